"""An infinite, seeded stream of uniform training batches whose position is checkpointable.

As in disentanglement_lib's input pipeline there are no epochs: each batch holds ``batch_size``
independent uniform draws of the full factor vector (latent and nuisance), so every grid point is
equally likely. Batch ``b`` is drawn from its own generator ``default_rng([seed, b])``, which makes
the stream's state just ``(seed, position)``: restoring a checkpoint resumes the exact sequence, and
batches can be prepared ahead in a background thread without changing what is produced.

``draw`` is the sequence's one definition (the grid indices of a batch and the generator a transform
then draws from); ``disent_core.data.resident.ResidentStream`` gathers the same indices from the whole
dataset held on the training device instead of rendering them on the host.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import numpy as np
import torch

from disent_core.data.dataset import GroundTruthDataset


class TrainingStream(Iterator[torch.Tensor]):
    """Yields (B, C, H, W) batches: uint8 for plain datasets, float32 in [0, 1] for variants."""

    def __init__(
        self, dataset: GroundTruthDataset, batch_size: int, seed: int, prefetch: int = 2
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = int(seed)
        self.position = 0
        self.prefetch = prefetch
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._as_uint8 = dataset.transform is None

    def batch(self, index: int) -> torch.Tensor:
        """The batch at position ``index`` of this stream (pure function of seed and index).

        Args:
            index: the batch's position in the stream, >= 0.

        Returns:
            (batch_size, C, H, W) CPU tensor: uint8 in 0..255 for plain datasets, float32 in [0, 1]
            for variants with a transform.
        """
        grid, rng = self.draw(index)
        images = self.dataset.observations_at(grid, rng, as_uint8=self._as_uint8)
        return torch.from_numpy(np.ascontiguousarray(images))

    def draw(self, index: int) -> tuple[np.ndarray, np.random.Generator]:
        """The grid points of batch ``index``: the one definition of the stream's random sequence.

        Args:
            index: the batch's position in the stream, >= 0.

        Returns:
            (batch_size,) int64 flat grid indices, and the batch's generator after drawing them (a
            transform draws from it next).
        """
        rng = np.random.default_rng([self.seed, int(index)])
        space = self.dataset.factor_space
        return space.factors_to_index(space.sample_all_factors(self.batch_size, rng)), rng

    def __iter__(self) -> TrainingStream:
        return self

    def __next__(self) -> torch.Tensor:
        if self.prefetch <= 0:
            out = self.batch(self.position)
        else:
            if self._thread is None:
                self._start()
            index, out = self._queue.get()
            if isinstance(out, BaseException):
                raise out
            assert index == self.position
        self.position += 1
        return out

    def _start(self) -> None:
        self._stop.clear()
        self._queue = queue.Queue(maxsize=self.prefetch)
        start = self.position

        def work() -> None:
            index = start
            while not self._stop.is_set():
                try:
                    item = (index, self.batch(index))
                except BaseException as exc:  # handed to the consumer, which re-raises it
                    item = (index, exc)
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                index += 1

        self._thread = threading.Thread(target=work, name="training-stream", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the prefetching thread, if any."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._queue = None

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "position": self.position, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at a checkpoint's seed and position, stopping any prefetching first.

        Args:
            state: a dict returned by ``state_dict`` (seed, position, batch_size).

        Raises:
            ValueError: the checkpoint's batch size differs from this stream's.
        """
        if int(state["batch_size"]) != self.batch_size:
            raise ValueError(
                f"stream checkpoint has batch size {state['batch_size']}, config has {self.batch_size}"
            )
        self.close()
        self.seed = int(state["seed"])
        self.position = int(state["position"])
