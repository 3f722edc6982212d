"""tickstore core: the typed settings, the lake connection and the error type every stage shares."""
