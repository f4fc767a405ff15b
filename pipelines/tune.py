"""DVC stage `tune@STUDY` (studies/dvc.yaml): a thin entry point over inpaint.stages."""
import sys

from inpaint.stages import main

if __name__ == "__main__":
    sys.exit(main("tune", sys.argv[1:]))
