"""tickstore core: the typed settings and the lake connection every stage shares."""
