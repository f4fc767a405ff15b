"""The model zoo. Importing this package registers every architecture (see registry.py)."""
from inpaint.models import gconv, gdn, lgnet, patchgan, pconv, pennet  # noqa: F401
