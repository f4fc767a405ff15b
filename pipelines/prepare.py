"""DVC stage `prepare` (see dvc.yaml): a thin entry point over inpaint.stages."""
import sys

from inpaint.stages import main

if __name__ == "__main__":  # the masks stage spawns worker processes that re-import this file
    sys.exit(main("prepare", sys.argv[1:]))
