"""Parallel generation of a mask set until every bin holds exactly its quota.

Determinism. Candidate i (a global counter over the whole run) draws everything from
`default_rng([seed, split, i])` and is made *for* a target bin t(i) (the target picks the stroke-count mean
when steering and whether the 23 px margin applies). Generation runs in rounds; round r's candidates and
their targets are a function of the results of rounds < r only: for every bin still short, the round plans
enough candidates to cover the shortfall given the yield matrix measured so far (target -> bin landing
rates), and interleaves them with a permutation seeded by (seed, split, r). The set is then, per bin, the
first `per_bin` eligible candidates in index order, skipping a candidate whose mask equals one already taken
(or one in `exclude`, the training hashes when making a test set). Surplus candidates are discarded.
Nothing depends on how candidates are spread over processes, so 1 and N workers write identical files.

Eligibility mirrors GDN's two runs of `mask_processing.py` (with and without margin): a candidate made for a
margin bin gets the margin and counts only if it lands in a margin bin; any other candidate gets no margin
and counts only if it lands in a non-margin bin.
"""
from __future__ import annotations

import multiprocessing as mp
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from multiprocessing.pool import Pool
from pathlib import Path

import numpy as np
from tqdm import tqdm

from inpaint.bins import BINS, label
from inpaint.masks.store import StoreWriter, mask_hash
from inpaint.masks.worker import SPLIT_ID, Job, init_worker, run_candidates, run_task

CHUNK = 256  # candidates per task
NB = len(BINS)
PARALLEL_MIN = 6000  # smaller runs (train + test masks) stay in-process: starting spawn workers costs 1-3 s


@dataclass
class Workers:
    pool: Pool
    processes: int


@contextmanager
def worker_pool(jobs: dict[str, Job], workers: int):
    """`Workers` around a spawn pool whose processes hold `jobs` (one per split); None for workers == 1."""
    if workers <= 1:
        yield None
        return
    pool = mp.get_context("spawn").Pool(workers, initializer=init_worker, initargs=(jobs,))
    try:
        yield Workers(pool, workers)
    finally:
        pool.terminate()
        pool.join()


def _ordered(workers: Workers, tasks: list):
    """Results of `run_task` over `tasks` in order, with only a few tasks in flight, so that stopping early
    (every bin full) leaves little queued work behind in the pool."""
    pending: deque = deque()
    it = iter(tasks)
    for t in islice(it, 2 * workers.processes + 2):
        pending.append(workers.pool.apply_async(run_task, (t,)))
    while pending:
        result = pending.popleft().get()
        nxt = next(it, None)
        if nxt is not None:
            pending.append(workers.pool.apply_async(run_task, (nxt,)))
        yield result


# --------------------------------------------------------------------------------------------------------
# planning
# --------------------------------------------------------------------------------------------------------

PRIOR_WEIGHT = 20.0


def _prior(margin_bins: tuple[int, ...]) -> np.ndarray:
    """Rough landing rates before any data: 0.2 on the diagonal, 0.05 to other bins of the same kind."""
    kind = np.array([b in margin_bins for b in range(NB)])
    y = np.where(kind[:, None] == kind[None, :], 0.05, 0.0)
    np.fill_diagonal(y, 0.2)
    return y


def plan_round(deficit: np.ndarray, yields: np.ndarray) -> np.ndarray:
    """Candidates per target so that the expected landings cover `deficit` (greedy fixed point)."""
    n = np.zeros(NB)
    diag = np.maximum(np.diag(yields), 1e-3)
    for _ in range(200):
        short = deficit - n @ yields
        if (short <= 0.5).all():
            break
        n += np.maximum(short, 0.0) / diag * 0.5
    return np.where(deficit > 0, np.ceil(n * 1.1) + 16, 0).astype(np.int64)


# --------------------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------------------

def generate_set(job: Job, per_bin: int, out_dir: Path, *, pool: Workers | None, shard_size: int,
                 max_candidates: int,
                 exclude: frozenset[str] | set[str] = frozenset()) -> dict:
    """Fill `out_dir` with `per_bin` masks in every bin; return statistics (and the hashes taken).

    `pool`: a `worker_pool` holding `job` under its split, or None to run in this process.
    """
    t0 = time.perf_counter()
    quota = np.full(NB, per_bin, np.int64)
    filled = np.zeros(NB, np.int64)
    tried = np.zeros(NB)  # candidates per target
    landed = np.zeros((NB, NB))  # eligible landings, target x bin
    prior = _prior(job.margin_bins)
    writer = StoreWriter(out_dir, job.image_size, quota.tolist(), shard_size)
    taken: set[str] = set()
    duplicates = 0
    next_index = 0
    rounds = 0
    stream = SPLIT_ID[job.split]
    bar = tqdm(total=int(quota.sum()), desc=f"masks {job.split}", unit="mask", mininterval=0.5)
    try:
        while (filled < quota).any():
            if next_index >= max_candidates:
                short = {label(b): int(quota[b] - filled[b]) for b in range(NB) if filled[b] < quota[b]}
                raise RuntimeError(
                    f"masks {job.split}: after {next_index} candidates these bins are still short {short}; "
                    f"raise masks.max_candidates_factor, or use steer: true / erosion: code / fewer margin_bins")
            yields = (prior * PRIOR_WEIGHT + landed) / (PRIOR_WEIGHT + tried[:, None])
            counts = plan_round((quota - filled).astype(float), yields)
            if rounds == 0:  # a pilot round: the prior is rough, so plan a third and measure
                counts = np.where(counts > 0, np.maximum(counts // 3, 64), 0)
            budget = max_candidates - next_index
            if counts.sum() > budget:
                counts = np.floor(counts * budget / counts.sum()).astype(np.int64)
                counts[np.argmax(counts)] += budget - counts.sum()
            targets = np.repeat(np.arange(NB, dtype=np.int64), counts)
            targets = targets[np.random.default_rng([job.seed, stream, 0x90D, rounds]).permutation(len(targets))]
            tasks = [(job.split, next_index + s, targets[s:s + CHUNK]) for s in range(0, len(targets), CHUNK)]
            results = (_ordered(pool, tasks) if pool is not None
                       else (run_candidates(job, *t[1:]) for t in tasks))
            for (_, start, tg), (idx, bins, ratios, rows) in zip(tasks, results):
                np.add.at(tried, tg, 1)
                np.add.at(landed, (tg[idx - start], bins), 1)
                for i, b, r, row in zip(idx.tolist(), bins.tolist(), ratios.tolist(), rows):
                    if filled[b] >= quota[b]:
                        continue
                    h = mask_hash(row)
                    if h in taken or h in exclude:
                        duplicates += 1
                        continue
                    taken.add(h)
                    writer.put(b, int(filled[b]), row, r, h, f"{job.source.kind}:{job.split}:{i}")
                    filled[b] += 1
                    bar.update(1)
                bar.set_postfix(candidates=start + len(tg), refresh=False)
                if (filled >= quota).all():
                    next_index = start + len(tg)
                    break
            else:
                next_index += len(targets)
            rounds += 1
        writer.finish()
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    n = int(quota.sum())
    return {"masks": n, "per_bin": filled.tolist(), "candidates": int(next_index), "rounds": rounds,
            "duplicates_dropped": duplicates, "seconds": round(seconds, 3),
            "masks_per_s": round(n / seconds, 1), "hashes": taken}
