"""tinygrad_cv.io: atomic writes that leave no temporary file behind, and safetensors files in and out."""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv.io import (atomic_write, atomic_write_bytes, load_safetensors, read_safetensors, remove_stale_temps,
                            save_figure, save_safetensors, temp_path)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(tg.__file__)))


def test_round_trip_keeps_names_dtypes_shapes_and_values(tmp_path):
    rng = np.random.default_rng(0)
    state = {"conv1.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
             "bn1.num_batches_tracked": np.array(7, dtype=np.int64),
             "half": rng.standard_normal(5).astype(np.float16),
             "mask": np.array([True, False]),
             "fortran": np.asfortranarray(rng.standard_normal((3, 2))),
             "strided": np.arange(10.0)[::3]}
    save_safetensors(state, tmp_path / "w.safetensors")
    loaded = load_safetensors(tmp_path / "w.safetensors")
    assert sorted(loaded) == sorted(state)
    for name, value in state.items():
        assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape, name
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)


def test_tensors_are_accepted_and_loads_never_alias(tmp_path):
    weight = tg.randn(3, 2)
    source = np.arange(4.0)
    save_safetensors({"w": weight, "x": source}, tmp_path / "t.safetensors")
    source[0] = 100.0  # the file holds what was passed, not a view of it
    first = load_safetensors(tmp_path / "t.safetensors")
    np.testing.assert_array_equal(first["w"], weight.numpy())
    assert first["x"][0] == 0.0
    first["x"][1] = -1.0  # writable and private: a second load is unaffected
    assert load_safetensors(tmp_path / "t.safetensors")["x"][1] == 1.0


def test_the_file_is_plain_safetensors_with_our_metadata(tmp_path):
    path = save_safetensors({"a": np.ones((2, 3), np.float32)}, tmp_path / "m.safetensors", metadata={"k": "v"})
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])  # the format by hand: u64 header length, JSON header, bytes
    header = json.loads(raw[8:8 + length])
    assert header["a"] == {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
    assert header["__metadata__"] == {"k": "v"}
    assert read_safetensors(path)[1] == {"k": "v"}


@pytest.mark.parametrize("damage", ["empty", "truncated", "not_safetensors", "lying_header"])
def test_a_bad_file_is_a_clear_error_naming_it(tmp_path, damage):
    path = save_safetensors({"a": np.arange(6.0)}, tmp_path / "good.safetensors")
    raw = path.read_bytes()
    bad = tmp_path / f"{damage}.safetensors"
    if damage == "empty":
        bad.write_bytes(b"")
    elif damage == "truncated":
        bad.write_bytes(raw[:-5])
    elif damage == "not_safetensors":
        np.savez(bad.with_suffix(".npz"), a=np.ones(3))
        os.replace(bad.with_suffix(".npz"), bad)
    else:  # the header claims 8 elements (64 bytes) but the data holds 6
        header = json.dumps({"a": {"dtype": "F64", "shape": [8], "data_offsets": [0, 64]}}).encode()
        bad.write_bytes(struct.pack("<Q", len(header)) + header + raw[-48:])
    with pytest.raises(ValueError, match=f"load_safetensors: .*{damage}.safetensors.*not a valid safetensors"):
        load_safetensors(bad)


def test_a_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.safetensors"):
        load_safetensors(tmp_path / "nothing.safetensors")


def test_unstorable_values_are_refused_before_writing(tmp_path):
    with pytest.raises(TypeError, match="'s'.*dtype <U3"):
        save_safetensors({"s": np.array(["abc"])}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="'n'.*expected an array or a Tensor, got list"):
        save_safetensors({"n": [1, 2]}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="names must be strings"):
        save_safetensors({1: np.ones(1)}, tmp_path / "x.safetensors")
    assert os.listdir(tmp_path) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = save_safetensors({"a": np.ones(3)}, tmp_path / "w.safetensors")
    good = path.read_bytes()

    def power_cut(fd):
        raise OSError("power cut")

    monkeypatch.setattr(os, "fsync", power_cut)
    with pytest.raises(OSError, match="power cut"):
        save_safetensors({"a": np.zeros(3)}, path)
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["w.safetensors"]


def test_atomic_write_bytes_cleans_up_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "k.cubin"
    atomic_write_bytes(target, b"one")
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"one" and os.listdir(tmp_path) == ["k.cubin"]


def test_a_killed_writer_leaves_a_temp_that_the_next_durable_save_removes(tmp_path):
    """A child process starts writing a checkpoint and is SIGKILLed mid-write (it waits, killed, inside
    ``write``). Its temporary file stays; the next durable save in that folder removes it."""
    script = ("import sys, time\nfrom tinygrad_cv.io import atomic_write\n"
              "def write(tmp):\n    open(tmp, 'wb').write(b'x' * 100000)\n    print(tmp, flush=True)\n"
              "    time.sleep(60)\n"
              "atomic_write(sys.argv[1], write, durable=True)\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "ck.safetensors")],
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    tmp = child.stdout.readline().strip()
    child.kill()
    child.wait()
    child.stdout.close()
    assert os.path.basename(tmp).startswith(".ck.safetensors.") and os.path.exists(tmp)
    atomic_write(tmp_path / "other.png", lambda t: open(t, "wb").write(b"png"))  # not durable: no scan
    assert os.path.exists(tmp)
    save_safetensors({"a": np.ones(2)}, tmp_path / "ck.safetensors")
    assert sorted(os.listdir(tmp_path)) == ["ck.safetensors", "other.png"]


def test_the_temps_of_live_writers_are_kept(tmp_path):
    mine = temp_path(tmp_path / "busy.safetensors")  # this process is alive
    open(mine, "wb").close()
    foreign = tmp_path / ".busy.safetensors.otherhost.1-1.tmp"  # another host: cannot tell, so keep
    foreign.write_bytes(b"")
    assert remove_stale_temps(tmp_path) == []
    assert os.path.exists(mine) and foreign.exists()


def test_save_figure_writes_a_png_in_a_new_folder_and_leaves_no_temporary(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=(2, 1))
    FigureCanvasAgg(figure)
    figure.add_subplot().plot([0, 1], [1, 0])
    path = save_figure(figure, tmp_path / "plots" / "line.png")
    assert path == tmp_path / "plots" / "line.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path / "plots") == ["line.png"]
