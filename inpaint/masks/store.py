"""Mask sets on disk: fixed-length packed-bit rows in .npy shards, a manifest, O(1) random access.

A set directory holds

* `shard_00000.npy`, ...: uint8 arrays of shape (rows, ceil(H * W / 8)), row g = np.packbits(mask g)
  (C order, 1 = hole); every shard but the last holds exactly `shard_size` rows;
* `store.json`: format, image_size, row_bytes, shard_size, count and the shard list with row counts;
* `manifest.csv`: index, bin, ratio, hash, source (one row per mask, index = 0..count-1, sorted by bin,
  then by the generator's candidate order; ratio = holes / area exactly; hash = blake2b-128 of the row).

Every file is written under a temporary name and renamed when complete. `MaskStore` checks the manifest
against `store.json` and the shards when it opens a set and names the offending file on any mismatch; it
never modifies a set. Shards are memory-mapped, so `store[i]` reads one row of ceil(H * W / 8) bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from inpaint.bins import BINS

FORMAT = "inpaint-masks/1"
COLUMNS = ["index", "bin", "ratio", "hash", "source"]


class MaskStoreError(ValueError):
    """A mask set on disk that is missing, truncated or inconsistent; the message names the file."""


_EDGES = np.array([lo for lo, _ in BINS] + [BINS[-1][1]])


def bins_of(ratios) -> np.ndarray:
    """Vectorised `inpaint.bins.bin_of`: bin index per ratio (left-open, right-closed), -1 outside."""
    r = np.asarray(ratios, dtype=np.float64)
    b = np.searchsorted(_EDGES, r, side="left") - 1
    return np.where((r > _EDGES[0]) & (r <= _EDGES[-1]), b, -1).astype(np.int64)


def row_bytes(size: int) -> int:
    return (size * size + 7) // 8


def mask_hash(row: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=16).hexdigest()


def shard_name(k: int) -> str:
    return f"shard_{k:05d}.npy"


class StoreWriter:
    """Writes a set whose per-bin counts are known up front: `put(b, j, ...)` stores the j-th mask of bin b
    at its final global index, so masks can arrive in any order (memory stays at one row per call)."""

    def __init__(self, directory: Path, image_size: int, counts: list[int], shard_size: int):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.size = image_size
        self.row_bytes = row_bytes(image_size)
        self.counts = [int(c) for c in counts]
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)
        self.total = int(self.offsets[-1])
        self.shard_size = int(shard_size)
        self.bins = np.repeat(np.arange(len(self.counts)), self.counts)
        self.ratios = np.full(self.total, np.nan)
        self.hashes = [""] * self.total
        self.sources = [""] * self.total
        self.filled = np.zeros(self.total, bool)
        self.shards: list[tuple[Path, Path, np.ndarray]] = []  # (temporary path, final path, memmap)
        for k, start in enumerate(range(0, self.total, self.shard_size)):
            rows = min(self.shard_size, self.total - start)
            final = self.dir / shard_name(k)
            tmp = self.dir / f".{final.name}.partial"
            mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(rows, self.row_bytes))
            self.shards.append((tmp, final, mm))

    def put(self, b: int, j: int, row: np.ndarray, ratio: float, digest: str, source: str) -> None:
        if not 0 <= j < self.counts[b]:
            raise IndexError(f"bin {b} holds {self.counts[b]} masks, got position {j}")
        g = int(self.offsets[b] + j)
        self.shards[g // self.shard_size][2][g % self.shard_size] = row
        self.ratios[g] = ratio
        self.hashes[g] = digest
        self.sources[g] = source
        self.filled[g] = True

    def finish(self) -> pd.DataFrame:
        if not self.filled.all():
            missing = np.flatnonzero(~self.filled)
            raise RuntimeError(f"{self.dir}: {len(missing)} of {self.total} masks were never written "
                               f"(first missing index {missing[0]})")
        shards = []
        for tmp, final, mm in self.shards:
            mm.flush()
            rows = len(mm)
            del mm
            os.replace(tmp, final)
            shards.append({"file": final.name, "rows": rows})
        self.shards = []
        manifest = pd.DataFrame({"index": np.arange(self.total), "bin": self.bins, "ratio": self.ratios,
                                 "hash": self.hashes, "source": self.sources})
        tmp = self.dir / ".manifest.csv.partial"
        manifest.to_csv(tmp, index=False, float_format="%.17g")
        os.replace(tmp, self.dir / "manifest.csv")
        meta = {"format": FORMAT, "image_size": self.size, "row_bytes": self.row_bytes,
                "shard_size": self.shard_size, "count": self.total, "per_bin": self.counts, "shards": shards}
        tmp = self.dir / ".store.json.partial"
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp, self.dir / "store.json")
        return manifest


def write_store(directory: Path, masks: np.ndarray, bins: np.ndarray, sources: list[str],
                shard_size: int = 4096) -> pd.DataFrame:
    """Write a small set from memory (masks N x H x W in {0, 1}); rows are sorted by bin, stably."""
    masks = np.asarray(masks, dtype=np.uint8)
    order = np.argsort(np.asarray(bins), kind="stable")
    counts = np.bincount(np.asarray(bins), minlength=len(BINS))
    w = StoreWriter(directory, masks.shape[1], counts.tolist(), shard_size)
    pos = np.zeros(len(BINS), np.int64)
    for i in order:
        b = int(bins[i])
        row = np.packbits(masks[i])
        w.put(b, int(pos[b]), row, float(masks[i].mean()), mask_hash(row), sources[i])
        pos[b] += 1
    return w.finish()


class MaskStore:
    """Read side of a set written by `StoreWriter`. `store[i]` -> uint8 H x W in {0, 1}, 1 = hole."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        meta_path = self.directory / "store.json"
        if not self.directory.is_dir():
            raise MaskStoreError(f"{self.directory}: no such mask set directory")
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise MaskStoreError(f"{meta_path}: missing (a mask set needs store.json, manifest.csv and "
                                 f"its shards; rebuild it with the masks stage)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise MaskStoreError(f"{meta_path}: not valid JSON ({e})") from None
        try:
            if meta["format"] != FORMAT:
                raise MaskStoreError(f"{meta_path}: format {meta['format']!r}, expected {FORMAT!r}")
            self.image_size = int(meta["image_size"])
            self.row_bytes = int(meta["row_bytes"])
            self.shard_size = int(meta["shard_size"])
            count = int(meta["count"])
            shards = [(str(s["file"]), int(s["rows"])) for s in meta["shards"]]
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, MaskStoreError):
                raise
            raise MaskStoreError(f"{meta_path}: malformed ({type(e).__name__}: {e})") from None
        if self.row_bytes != row_bytes(self.image_size) or sum(r for _, r in shards) != count:
            raise MaskStoreError(f"{meta_path}: inconsistent (row_bytes {self.row_bytes} for size "
                                 f"{self.image_size}, shard rows {sum(r for _, r in shards)} vs count {count})")
        self.manifest = self._read_manifest(count)
        self._paths = [self.directory / f for f, _ in shards]
        self._rows = [r for _, r in shards]
        for k, (path, rows) in enumerate(zip(self._paths, self._rows)):
            if rows != (self.shard_size if k < len(shards) - 1 else count - k * self.shard_size):
                raise MaskStoreError(f"{meta_path}: shard {path.name} lists {rows} rows; expected shard_size "
                                     f"{self.shard_size} rows per shard (fewer only in the last)")
            self._check_shard(path, rows)
        self._mm: list[np.ndarray | None] = [None] * len(self._paths)
        self._bins = self.manifest["bin"].to_numpy()
        self._bin_index = {b: np.flatnonzero(self._bins == b) for b in range(len(BINS))}

    # -- validation ---------------------------------------------------------------------------------------

    def _read_manifest(self, count: int) -> pd.DataFrame:
        path = self.directory / "manifest.csv"
        try:
            df = pd.read_csv(path, dtype={"hash": str, "source": str}, keep_default_na=False)
        except FileNotFoundError:
            raise MaskStoreError(f"{path}: missing") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
            raise MaskStoreError(f"{path}: not a readable CSV ({type(e).__name__}: {e})") from None
        if list(df.columns) != COLUMNS:
            raise MaskStoreError(f"{path}: columns {list(df.columns)}, expected {COLUMNS}")
        if len(df) != count:
            raise MaskStoreError(f"{path}: {len(df)} rows but store.json counts {count} masks")
        try:
            index = pd.to_numeric(df["index"], errors="raise").to_numpy()
            bins = pd.to_numeric(df["bin"], errors="raise").to_numpy()
            ratio = pd.to_numeric(df["ratio"], errors="raise").to_numpy(dtype=np.float64)
        except (ValueError, TypeError) as e:
            raise MaskStoreError(f"{path}: non-numeric index, bin or ratio ({e})") from None
        if not np.array_equal(index, np.arange(count)):
            bad = int(np.flatnonzero(index != np.arange(count))[0]) if len(index) == count else 0
            raise MaskStoreError(f"{path}: column index must run 0..{count - 1} in order (first bad row {bad + 2})")
        wrong = np.flatnonzero(bins_of(ratio) != bins)
        if len(wrong):
            row = int(wrong[0])
            b, r = bins[row], ratio[row]
            raise MaskStoreError(f"{path}: line {row + 2}: ratio {r} does not lie in bin {b} "
                                 f"{BINS[int(b)] if 0 <= b < len(BINS) else '(no such bin)'}")
        if (df["hash"].str.len() != 32).any():
            row = int(np.flatnonzero((df["hash"].str.len() != 32).to_numpy())[0])
            raise MaskStoreError(f"{path}: line {row + 2}: hash must be 32 hex digits")
        df["index"] = index.astype(np.int64)
        df["bin"] = bins.astype(np.int64)
        df["ratio"] = ratio
        return df

    def _check_shard(self, path: Path, rows: int) -> None:
        want = f"{rows} rows x {self.row_bytes} bytes (uint8)"
        try:
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
                header = f.tell()
        except FileNotFoundError:
            raise MaskStoreError(f"{path}: shard missing (expected {want})") from None
        except (ValueError, OSError, EOFError) as e:
            raise MaskStoreError(f"{path}: not a readable .npy shard ({e}); expected {want}") from None
        if shape != (rows, self.row_bytes) or dtype != np.uint8 or fortran:
            raise MaskStoreError(f"{path}: holds {shape} {dtype}, expected {want}")
        size = os.path.getsize(path)
        if size != header + rows * self.row_bytes:
            raise MaskStoreError(f"{path}: truncated or corrupt: {size} bytes on disk, expected "
                                 f"{header + rows * self.row_bytes} ({want})")

    def verify(self) -> None:
        """Decode every row and check it against the manifest's hash and ratio (slow; tests and audits)."""
        for i in range(len(self)):
            row = self.row(i)
            h = mask_hash(row)
            if h != self.manifest.at[i, "hash"]:
                raise MaskStoreError(f"{self._paths[i // self.shard_size]}: mask {i} does not match the hash "
                                     f"in {self.directory / 'manifest.csv'}")
            ratio = float(np.unpackbits(row, count=self.image_size ** 2).mean())
            if ratio != self.manifest.at[i, "ratio"]:
                raise MaskStoreError(f"{self.directory / 'manifest.csv'}: mask {i} has ratio {ratio}, "
                                     f"the manifest says {self.manifest.at[i, 'ratio']}")

    # -- access -------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.manifest)

    def _shard(self, k: int) -> np.ndarray:
        mm = self._mm[k]
        if mm is None:
            mm = self._mm[k] = np.load(self._paths[k], mmap_mode="r")
        return mm

    def row(self, i: int) -> np.ndarray:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"mask index {i} out of range for {n} masks in {self.directory}")
        i %= n
        return self._shard(i // self.shard_size)[i % self.shard_size]

    def __getitem__(self, i: int) -> np.ndarray:
        s = self.image_size
        return np.unpackbits(self.row(int(i)), count=s * s).reshape(s, s)

    def indices_in_bin(self, b: int) -> np.ndarray:
        if not 0 <= b < len(BINS):
            raise IndexError(f"bin must be in 0..{len(BINS) - 1}, got {b}")
        return self._bin_index[b]

    def __getstate__(self):  # picklable for DataLoader workers: reopen the memmaps lazily
        state = self.__dict__.copy()
        state["_mm"] = [None] * len(self._paths)
        return state

    def __repr__(self) -> str:
        return f"MaskStore({str(self.directory)!r}, {len(self)} masks, {self.image_size}x{self.image_size})"


def check_no_leak(train: MaskStore, test: MaskStore) -> None:
    """Raise ValueError if any test mask equals a training mask (content hash)."""
    if train.image_size != test.image_size:
        raise ValueError(f"mask sets of different sizes: {train.directory} is {train.image_size}px, "
                         f"{test.directory} is {test.image_size}px")
    shared = set(train.manifest["hash"]) & set(test.manifest["hash"])
    if shared:
        t = test.manifest[test.manifest["hash"].isin(shared)]
        listed = ", ".join(f"{h} (test index {i})" for h, i in zip(t["hash"][:10], t["index"][:10]))
        more = f" and {len(shared) - 10} more" if len(shared) > 10 else ""
        raise ValueError(f"{len(shared)} test mask(s) in {test.directory} equal training masks in "
                         f"{train.directory}: {listed}{more}")
