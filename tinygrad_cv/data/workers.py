"""Background workers for the DataLoader: forked (or, without fork, spawned) processes, talking over
pipes without pickle.

Why processes: preparing a sample is many short NumPy calls, and Python runs them one thread at a
time (threads measured here gave no speed-up at all); processes run truly in parallel.

Why no pickle in the answers: a forked worker already holds the dataset and the transforms; requests
are raw int64 bytes ([epoch, index, index, ...]) and answers are ``.npy`` records read back with
``allow_pickle=False``: a JSON manifest of the batch's structure (dicts, lists, tuples, strings, which
arrays are Tensors), then its arrays. Nothing the main process receives can run code.

Where the system has no fork (Windows), workers are spawned: a spawned child starts a fresh Python and
re-imports the main module, so it holds nothing, and the loader (its dataset and transforms) is sent to
it once, at start, by multiprocessing's standard mechanism, pickling, from the main process to its own
child. Only this path pickles, only in that direction, and only the loader object (the files it reads
are read by the worker, never pickled). The loader must then be picklable (no lambdas or local
functions in the dataset or transforms), and a script must start its training under
``if __name__ == "__main__":``, as multiprocessing requires on Windows.

Batch b is asked of worker b % num_workers, and each worker answers in the order it was asked,
so batches come back in order. A worker runs the loader's ``worker_init_fn(worker_id)`` first; if that
raises, the worker answers every request with its error.
"""
import io
import json
import multiprocessing
import pickle
import traceback

import numpy as np

from ..tensor import Tensor
from .errors import DataFormatError
from .image_io import ImageReadError

# --------------------------------------------------------------------------- batch <-> bytes
_ERRORS = {cls.__name__: cls for cls in (ImageReadError, DataFormatError, ValueError, TypeError, IndexError, KeyError)}


def pack(batch):
    """Bytes of a batch made of dicts (str keys), lists, tuples, strings, arrays and (CPU) Tensors:
    ``.npy`` records, the first a JSON manifest of the structure (as uint8), then one per array."""
    arrays = []

    def skeleton(node):
        if isinstance(node, dict):
            if not all(isinstance(key, str) for key in node):
                raise TypeError(f"DataLoader workers: batch dict keys must be strings, got {list(node)[:5]}")
            return {"dict": {key: skeleton(value) for key, value in node.items()}}
        if type(node) in (list, tuple):
            return {type(node).__name__: [skeleton(value) for value in node]}
        if isinstance(node, str):
            return {"str": node}
        if isinstance(node, Tensor):
            if node.device != "cpu":
                raise TypeError(f"DataLoader workers: a batch Tensor on {node.device!r} cannot come back from a "
                                f"worker; keep samples on the CPU and move batches with Tensor.to(device)")
            arrays.append(node.numpy())
            return {"tensor": len(arrays) - 1}
        if isinstance(node, (list, tuple)):
            raise TypeError(f"DataLoader workers: cannot send a {type(node).__name__} (a list or tuple subclass, "
                            f"e.g. a namedtuple) back from a worker; return a plain tuple or dict, or use "
                            f"num_workers=0")
        array = np.asarray(node)
        if array.dtype.hasobject:
            raise TypeError(f"DataLoader workers: cannot send a {type(node).__name__} (object array) back "
                            f"from a worker; batches must hold numbers, arrays and strings")
        arrays.append(array)
        return {"array": len(arrays) - 1}

    manifest = np.frombuffer(json.dumps(skeleton(batch)).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    for array in (manifest, *arrays):                  # .npy records one after the other (no zip, no CRC)
        np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def unpack(data):
    """The batch ``pack`` encoded (arrays come back as arrays, numbers as 0-d arrays)."""
    buffer = io.BytesIO(data)
    arrays = []
    while buffer.tell() < len(data):
        arrays.append(np.load(buffer, allow_pickle=False))
    manifest = json.loads(arrays[0].tobytes().decode())

    def build(node):
        (kind, value), = node.items()
        if kind == "dict":
            return {key: build(child) for key, child in value.items()}
        if kind in ("list", "tuple"):
            items = [build(child) for child in value]
            return items if kind == "list" else tuple(items)
        if kind == "tensor":
            return Tensor.wrap(arrays[1 + value], "cpu")
        return value if kind == "str" else arrays[1 + value]
    return build(manifest)


def _error_answer(error):
    return b"er" + json.dumps({"type": type(error).__name__, "message": str(error),
                               "traceback": traceback.format_exc()}).encode()


def _serve(loader, connection, worker_id):
    """A worker's loop: answer each request with b"ok" + the packed batch, or b"er" + the error as
    JSON; an empty request ends it."""
    failed_start = None
    if loader.worker_init_fn is not None:
        try:
            loader.worker_init_fn(worker_id)
        except Exception as error:
            failed_start = _error_answer(error)
    while True:
        request = connection.recv_bytes()
        if not request:
            return
        if failed_start is not None:
            connection.send_bytes(failed_start)
            continue
        epoch, *indices = np.frombuffer(request, dtype=np.int64).tolist()
        try:
            answer = b"ok" + pack(loader.load_batch(indices, epoch))
        except Exception as error:
            answer = _error_answer(error)
        connection.send_bytes(answer)


def start_method():
    """'fork' where the system has it (Linux, macOS), else 'spawn' (Windows)."""
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


class WorkerPool:
    """``num_workers`` copies of the loader (forked, or spawned where fork is missing: see the module's
    docstring) answering batch requests, one pipe each; a batch not received within ``timeout`` seconds
    (0: no limit) is a RuntimeError."""

    def __init__(self, loader, num_workers, timeout=0):
        context = multiprocessing.get_context(start_method())
        self.connections, self.processes, self.pending = [], [], [0] * num_workers
        self.timeout, self.closed = timeout, False
        for worker_id in range(num_workers):
            ours, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(loader, theirs, worker_id), daemon=True)
            try:
                process.start()
            except (pickle.PicklingError, AttributeError, TypeError) as error:
                ours.close(), theirs.close()
                self.close()
                raise TypeError(f"DataLoader workers: this system has no fork, so workers are spawned and get "
                                f"the loader by pickling, which failed: {error}; make the dataset and transforms "
                                f"picklable (module-level functions and classes, no lambdas) or use "
                                f"num_workers=0") from error
            theirs.close()
            self.connections.append(ours)
            self.processes.append(process)

    def request(self, worker, indices, epoch):
        self.connections[worker].send_bytes(np.array([epoch, *indices], dtype=np.int64).tobytes())
        self.pending[worker] += 1

    def receive(self, worker):
        if self.timeout > 0 and not self.connections[worker].poll(self.timeout):
            raise RuntimeError(f"DataLoader timed out after {self.timeout} seconds waiting for a batch from "
                               f"worker {worker}; raise timeout (or 0 for no limit) if loading a batch takes "
                               f"longer, or run with num_workers=0 to see where it stalls")
        try:
            answer = self.connections[worker].recv_bytes()
        except EOFError:
            code = self.processes[worker].exitcode
            raise RuntimeError(f"DataLoader: worker {worker} died (exit code {code}) while loading a batch; "
                               f"run with num_workers=0 to see the error in this process") from None
        self.pending[worker] -= 1
        if answer[:2] == b"ok":
            return unpack(answer[2:])
        error = json.loads(answer[2:].decode())
        raise _ERRORS.get(error["type"], RuntimeError)(
            f"{error['message']}\n(raised in a DataLoader worker: {error['type']}; its traceback:\n"
            f"{error['traceback']})")

    def drain(self):
        """Receive and drop the answers still due (an epoch left early), so the next request's
        answer is the next one received. A worker that died or timed out raises RuntimeError."""
        for worker in range(len(self.pending)):
            while self.pending[worker] > 0:
                due = self.pending[worker]
                try:
                    self.receive(worker)
                except Exception:
                    if self.pending[worker] == due:    # no answer came: the pool is broken
                        raise

    def close(self):
        """Stop the workers: an idle one is asked to finish, a busy one (the epoch was left early)
        is terminated, since it holds nothing that needs cleaning up. Closing twice does nothing."""
        if self.closed:
            return
        self.closed = True
        for process, connection, pending in zip(self.processes, self.connections, self.pending):
            if pending == 0 and process.is_alive():
                connection.send_bytes(b"")
                process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join()
            connection.close()
