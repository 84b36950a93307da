import json

import ml_dtypes
import numpy as np
import pytest

from harness.results.bundle import BundleWriter, OutputStore, load_outputs, path_safe_id, record_outputs, save_outputs


@pytest.mark.parametrize(
    "dtype, values",
    [
        (ml_dtypes.int4, [-8, -1, 0, 7]),
        (ml_dtypes.float8_e4m3fn, [-448, 0.3125, np.nan, 2**-9]),
        (ml_dtypes.float4_e2m1fn, [-6, 0.5, 1.5, 4]),
        (ml_dtypes.bfloat16, [1 / 3, -42.75, np.inf, 0]),
        (np.int8, [-128, 0, 1, 127]),
        (np.float16, [0.1, 2, -3, 65504]),
    ],
)
def test_outputs_round_trip_with_their_types(tmp_path, dtype, values):
    a = np.array(values, dtype=np.float64).astype(dtype).reshape(2, 2)
    path = save_outputs(tmp_path, "x/y::z", "numpy", {"out": a})
    back = load_outputs(path)["out"]
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 2)
    assert np.array_equal(back.astype(np.float64), a.astype(np.float64), equal_nan=True)
    with np.load(path, allow_pickle=False) as z:  # plain arrays only: no pickles needed to read it
        assert set(z.files) == {"out", "__dtypes__"}


def test_small_outputs_share_one_pack_per_process_and_each_reads_back(tmp_path):
    store = OutputStore(tmp_path)
    a = {"y": np.arange(6, dtype=np.int8).reshape(2, 3)}
    b = {"y": np.array([0.5, -2], dtype=ml_dtypes.float8_e4m3fn), "z": np.float32(7)}
    ra, rb = store.save("c::1", "numpy", a), store.save("c::2", "numpy", b)
    store.close()
    assert ra["outputs_file"] == rb["outputs_file"] and list(tmp_path.glob("outputs/*")) == [
        tmp_path / ra["outputs_file"]
    ]
    assert ra["outputs_range"][0] == 0 and rb["outputs_range"][0] == ra["outputs_range"][1]  # appended in order
    assert record_outputs(tmp_path, ra)["y"].tolist() == [[0, 1, 2], [3, 4, 5]]
    back = record_outputs(tmp_path, rb)
    assert back["y"].dtype == np.dtype(ml_dtypes.float8_e4m3fn) and back["y"].astype(float).tolist() == [0.5, -2]
    assert back["z"].shape == () and float(back["z"]) == 7.0
    other = OutputStore(tmp_path)  # another process (an xdist worker): its own pack, never the same file
    assert other.save("c::3", "numpy", a)["outputs_file"] != ra["outputs_file"]


def test_large_outputs_get_a_file_of_their_own(tmp_path, monkeypatch):
    from harness.results import outputs

    monkeypatch.setattr(outputs, "PACK_LIMIT", 16)
    store = OutputStore(tmp_path)
    big = store.save("r/x::y", "onnxruntime", {"y": np.arange(5, dtype=np.float32)})
    assert big == {"outputs_file": "outputs/r/x/@y/onnxruntime.npz"}
    assert record_outputs(tmp_path, big)["y"].tolist() == [0, 1, 2, 3, 4]


def test_a_pack_cut_short_is_an_error_not_other_values(tmp_path):
    store = OutputStore(tmp_path)
    r = store.save("c", "numpy", {"y": np.arange(4, dtype=np.int8)})
    store.close()
    path = tmp_path / r["outputs_file"]
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match="ends before"):
        record_outputs(tmp_path, r)


def test_path_safe_ids_are_readable_distinct_and_never_path_syntax():
    from urllib.parse import unquote

    a = path_safe_id("rules/axis::bad name::axis=4,dtype=float16")
    assert a == "rules/axis/@bad%20name/@axis=4,dtype=float16"
    assert unquote(a.split("/")[2][1:]) == "bad name"
    ids = [
        "x::b",
        "x/b",
        "a::b/c",
        "a/b%2Fc",
        "a::..",
        "a::.",
        "a::",
        "a::CON",
        "a::con.txt",
        "a::~",
        "a::%7E",
        "a::" + "n" * 300,
        "a::" + "n" * 299 + "m",
        "/../../../../canary/k",
        "a::\x00",
        "a::b::c",
        "a::b/c::d",
    ]
    paths = [path_safe_id(i) for i in ids]
    assert len(set(paths)) == len(ids), "two case ids share one outputs path"
    for p in paths:
        segments = p.split("/")
        assert all(s and s not in (".", "..") and not s.startswith(".") and len(s) <= 120 for s in segments), p
        assert not any(s.split(".")[0].upper() in ("CON", "NUL", "AUX", "PRN") for s in segments), p


def test_an_unfinished_run_leaves_a_valid_partial_bundle(tmp_path):
    w = BundleWriter(tmp_path, {"numpy": {}})
    w.add({"case_id": "c", "backend": "numpy", "status": "pass"})
    w.flush()
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["partial"] is True and doc["finished"] is None and len(doc["records"]) == 1
    w.finish(0, complete=True)
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["partial"] is False and doc["exit_status"] == 0
    assert not list(tmp_path.glob(".results.json.*"))  # no temporary files left behind


def test_the_journal_is_kept_until_the_run_completes(tmp_path):
    from harness.results.bundle import JOURNAL, load

    w = BundleWriter(tmp_path, {"numpy": {}})
    w.add({"nodeid": "n1", "case_id": "c", "backend": "numpy", "status": "pass"})
    assert (tmp_path / JOURNAL).read_text().count('"event": "record"') == 1
    w.finish(1, complete=False)  # interrupted: the journal stays for --resume
    assert (tmp_path / JOURNAL).exists() and load(tmp_path)["partial"] is True
    w2 = BundleWriter(tmp_path, {"numpy": {}}, resume=True)
    w2.add({"nodeid": "n2", "case_id": "d", "backend": "numpy", "status": "pass"})
    w2.finish(0, complete=True)
    assert not (tmp_path / JOURNAL).exists()
    assert sorted(r["nodeid"] for r in load(tmp_path)["records"]) == ["n1", "n2"]
