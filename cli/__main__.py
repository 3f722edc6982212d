"""`python -m cli` is the same as `tickstore`."""

from cli.main import main

if __name__ == "__main__":  # not again in a worker process that multiprocessing spawns
    main()
