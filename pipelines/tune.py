"""DVC stage `tune` (studies/dvc.yaml): a thin entry point over inpaint.tune."""
import sys

from inpaint.cli import main
from inpaint.lifetime import die_with_parent

if __name__ == "__main__":
    die_with_parent()  # `dvc repro` killed, even with -9: this stage stops too
    sys.exit(main(["tune", *sys.argv[1:]]))
