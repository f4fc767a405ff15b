"""DVC stage `prepare` (see dvc.yaml): a thin entry point over inpaint.stages."""
import sys

from inpaint.cli import main
from inpaint.lifetime import die_with_parent

if __name__ == "__main__":  # the masks stage spawns worker processes that re-import this file
    die_with_parent()  # `dvc repro` killed, even with -9: this stage stops too
    sys.exit(main(["prepare", *sys.argv[1:]]))
