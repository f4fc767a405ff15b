"""DVC stage `baselines` (see dvc.yaml): a thin entry point over inpaint.stages."""
import sys

from inpaint.stages import main

if __name__ == "__main__":
    sys.exit(main("baselines", sys.argv[1:]))
