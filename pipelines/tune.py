"""DVC stage `tune` (studies/dvc.yaml): a thin entry point over inpaint.tune."""
import sys

from inpaint.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
