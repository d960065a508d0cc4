"""core.safety.loader: real model files and hostile ones, written to disk, nothing mocked.

Every hostile file carries a payload that would create a marker file; each test checks the
marker is still absent after the refusal. One test runs the payloads with plain pickle and
joblib in a subprocess to show they are real.
"""

from __future__ import annotations

import builtins
import copyreg
import os
import pickle
import shlex
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io as sio
from safety_helpers import Thermostat
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression

from core.errors import FixativeError, InvalidModelFile, UnsafeModel
from core.safety.loader import (
    SafetyReport,
    defined_in_script_message,
    is_allowed,
    load_bytes,
    load_model,
    scan_bytes,
    scan_file,
)

HERE = Path(__file__).parent


class _Reduce:
    """Pickles as ``func(*args)``: how every pickle exploit is written."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _touch(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


PAYLOADS = {
    "posix.system": lambda m: _Reduce(os.system, f"touch {shlex.quote(str(m))}"),
    "subprocess.Popen": lambda m: _Reduce(subprocess.Popen, ["touch", str(m)]),
    "builtins.eval": lambda m: _Reduce(builtins.eval, _touch(m)),
    "builtins.exec": lambda m: _Reduce(builtins.exec, _touch(m)),
}


def _stack_global(marker: Path) -> bytes:
    """posix.system via STACK_GLOBAL, its strings fetched from the memo past two decoys."""
    cmd = f"touch {shlex.quote(str(marker))}".encode()
    return b"".join([
        b"\x80\x04",
        b"\x8c\x05posix\x94", b"\x8c\x06system\x94", b"00",      # memo 0, 1; popped
        b"\x8c\x05numpy\x94", b"\x8c\x05dtype\x94", b"00",       # decoys: memo 2, 3
        b"h\x00", b"j\x01\x00\x00\x00", b"\x93",                 # BINGET, LONG_BINGET, STACK_GLOBAL
        b"\x8c", bytes([len(cmd)]), cmd, b"\x85R.",
    ])


def _inst(marker: Path, opcode: str) -> bytes:
    """os.system through the instantiating opcodes of protocols 0 (INST) and 1 (OBJ)."""
    cmd = f"touch {shlex.quote(str(marker))}".encode()
    if opcode == "INST":
        return b"(V" + cmd + b"\nios\nsystem\n."
    return b"(cos\nsystem\nX" + struct.pack("<I", len(cmd)) + cmd + b"o."


def _write(path: Path, obj, how: str) -> Path:
    if how.startswith("pickle"):
        path.write_bytes(pickle.dumps(obj, protocol=int(how[-1])))
    elif how.startswith("joblib"):
        compress = how.partition(":")[2] or 0
        joblib.dump(obj, path, compress=(compress, 3) if compress else 0)
    else:
        sio.dump(obj, path)
    return path


def _suffix(how: str) -> str:
    return ".pkl" if how.startswith("pickle") else ".joblib" if how.startswith("joblib") \
        else ".skops"


# --- real models -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hgb(house_data):
    data = house_data.drop(columns=["price"]).astype({"zipcode": "category"})
    model = HistGradientBoostingRegressor(max_iter=10, categorical_features="from_dtype",
                                          random_state=0)
    return model.fit(data, house_data["price"]), data


@pytest.fixture(scope="module")
def models(house_model, house_data, churn_model, churn_data, hgb):
    houses = house_data.drop(columns=["price"])
    churn = churn_data.drop(columns=["churned"])
    numeric = churn[["tenure_months", "monthly_charges", "support_calls"]]
    logistic = LogisticRegression(max_iter=500).fit(numeric, churn_data["churned"])
    return {"pipeline_forest": (house_model, houses), "hist_gradient_boosting": hgb,
            "logistic": (logistic, numeric), "pipeline_logistic": (churn_model, churn)}


FORMATS = ["pickle2", "pickle3", "pickle4", "pickle5", "joblib", "joblib:zlib", "joblib:gzip",
           "joblib:bz2", "joblib:lzma", "joblib:xz", "skops"]


@pytest.mark.parametrize("how", FORMATS)
@pytest.mark.parametrize("which", ["pipeline_forest", "hist_gradient_boosting", "logistic"])
def test_real_models_scan_clean_and_load(models, tmp_path, which, how):
    model, rows = models[which]
    path = _write(tmp_path / f"model{_suffix(how)}", model, how)
    report = scan_file(path)
    assert report.ok, report.untrusted
    assert report.format == how.partition(":")[0].rstrip("2345")
    assert report.size == path.stat().st_size
    assert any(g.startswith("sklearn.") for g in report.globals)
    assert report.globals == sorted(set(report.globals))
    loaded = load_model(path, report=report)
    np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))


@pytest.mark.parametrize("how", ["joblib", "joblib:zlib", "joblib:lzma", "pickle5"])
def test_object_dtype_arrays_are_scanned_and_loaded(models, tmp_path, how):
    model, rows = models["pipeline_logistic"]
    encoder = model.named_steps["prep"].named_transformers_["plan"]
    assert encoder.categories_[0].dtype == object  # joblib writes these as nested pickles
    path = _write(tmp_path / f"churn{_suffix(how)}", model, how)
    report = scan_file(path)
    assert report.ok and "numpy.ndarray" in report.globals
    if how.startswith("joblib"):
        assert report.format == "joblib"
        assert "joblib.numpy_pickle.NumpyArrayWrapper" in report.globals
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))


def test_joblib_named_pkl_and_old_protocols(models, tmp_path):
    model, rows = models["pipeline_forest"]
    joblib.dump(model, tmp_path / "forest.pkl")
    assert scan_file(tmp_path / "forest.pkl").format == "joblib"  # found by its contents
    for protocol in (0, 1):
        path = tmp_path / f"forest{protocol}.pickle"
        path.write_bytes(pickle.dumps(model, protocol=protocol))
        report = scan_file(path)
        assert report.ok and report.format == "pickle"
        assert "copyreg._reconstructor" in report.globals  # Python 2 names mapped back
        np.testing.assert_array_equal(load_model(path).predict(rows), model.predict(rows))


def test_bytes_entry_points_and_report_dict(models, tmp_path):
    model, rows = models["pipeline_forest"]
    data = _write(tmp_path / "m.joblib", model, "joblib:gzip").read_bytes()
    report = scan_bytes(data, "upload.joblib")
    assert report.to_dict() == {"format": "joblib", "globals": report.globals,
                                "untrusted": [], "forbidden": [], "size": len(data),
                                "ok": True}
    np.testing.assert_array_equal(load_bytes(data, "upload.joblib").predict(rows),
                                  model.predict(rows))
    joblib.dump(model, tmp_path / "m.joblib.xz")  # joblib picks xz from the name
    assert scan_file(tmp_path / "m.joblib.xz").ok
    stored = tmp_path / "upload-0001"  # an upload kept under a name without extension
    stored.write_bytes(data)
    assert scan_file(stored, filename="model.joblib").ok


# --- hostile files -----------------------------------------------------------------------------
def _assert_refused(path: Path, name: str, marker: Path, **kwargs) -> None:
    report = scan_file(path)
    assert name in report.untrusted and not report.ok
    assert report.forbidden == [name]
    with pytest.raises(UnsafeModel, match=rf"{path.name} would run .*{name}") as info:
        load_model(path, **kwargs)
    message = info.value.message
    assert "cannot be trusted or loaded" in message and "--trust" not in message
    assert name in info.value.untrusted
    assert not marker.exists(), "the payload ran"
    # a program or code runner is refused even when the caller names it as trusted
    with pytest.raises(UnsafeModel, match="cannot be trusted"):
        load_model(path, trusted=[name])
    with pytest.raises(UnsafeModel, match="cannot be trusted"):
        load_bytes(path.read_bytes(), path.name, trusted=[name])
    assert not marker.exists(), "the payload ran when trusted"


@pytest.mark.parametrize(("name", "forbidden"), [
    ("posix.system", True), ("os.system", True), ("nt.spawnv", True), ("os.execvp", True),
    ("os.posix_spawn", True), ("subprocess.check_output", True), ("builtins.exec", True),
    ("builtins.__import__", True), ("pickle.loads", True), ("_pickle.loads", True),
    ("marshal.loads", True), ("runpy.run_path", True), ("ctypes.CDLL", True),
    ("importlib.import_module", True), ("pty.spawn", True),
    # nothing in os, builtins or posixpath is model code: trust cannot reach them
    ("os.getcwd", True), ("builtins.getattr", True), ("posixpath.join", True),
    ("mypkg.MyTransformer", False), ("subprocessing.Thing", False),
    ("sklearn.linear_model.LinearRegression", False), ("numpy.log1p", False),
])
def test_only_program_and_code_runners_are_beyond_trust(name, forbidden):
    from core.safety.loader import never_trusted

    assert never_trusted(name) is forbidden


@pytest.mark.parametrize("how", ["pickle2", "pickle5", "joblib", "joblib:zlib", "joblib:xz"])
@pytest.mark.parametrize("name", list(PAYLOADS))
def test_payload_is_refused_and_never_runs(tmp_path, name, how):
    marker = tmp_path / "pwned"
    path = _write(tmp_path / f"evil{_suffix(how)}", {"model": PAYLOADS[name](marker)}, how)
    _assert_refused(path, name, marker)
    with pytest.raises(UnsafeModel):
        load_bytes(path.read_bytes(), path.name)
    assert not marker.exists()


def test_stack_global_with_memoised_strings(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "memo.pkl"
    path.write_bytes(_stack_global(marker))
    assert scan_file(path).untrusted == ["posix.system"]
    assert "numpy.dtype" not in scan_file(path).globals  # the decoys are not what is imported
    _assert_refused(path, "posix.system", marker)


@pytest.mark.parametrize("opcode", ["INST", "OBJ"])
def test_instantiating_opcodes(tmp_path, opcode):
    marker = tmp_path / "pwned"
    path = tmp_path / "inst.pkl"
    path.write_bytes(_inst(marker, opcode))
    _assert_refused(path, "os.system", marker)


def test_extension_codes_go_through_the_allowlist(tmp_path):
    """EXT opcodes name globals through copyreg's registry; a cached earlier lookup must not
    let one past the scan or the loader."""
    marker = tmp_path / "pwned"
    cmd = f"touch {shlex.quote(str(marker))}".encode()
    path = tmp_path / "ext.pkl"
    path.write_bytes(b"\x80\x02\x82\xf0X" + struct.pack("<I", len(cmd)) + cmd + b"\x85R.")
    copyreg.add_extension("os", "system", 0xF0)
    copyreg._extension_cache[0xF0] = os.system  # as if something had loaded it before
    try:
        _assert_refused(path, "os.system", marker)
        forged = SafetyReport(format="pickle", globals=[], untrusted=[],
                              size=path.stat().st_size)
        with pytest.raises(UnsafeModel, match="os.system"):
            load_model(path, report=forged)
    finally:
        copyreg.remove_extension("os", "system", 0xF0)
    assert not marker.exists()


def test_a_file_swapped_after_its_scan_is_scanned_again(models, tmp_path):
    marker = tmp_path / "pwned"
    path = _write(tmp_path / "model.joblib", models["logistic"][0], "joblib")
    report = scan_file(path)
    assert report.ok
    joblib.dump({"m": PAYLOADS["builtins.eval"](marker)}, path)
    with pytest.raises(UnsafeModel, match="builtins.eval"):
        load_model(path, report=report)
    assert not marker.exists()


def _xy(models):
    model, rows = models["logistic"]
    return rows, model.predict(rows)


def test_payload_inside_a_fitted_models_state(models, tmp_path):
    marker = tmp_path / "pwned"
    model = clone(models["logistic"][0]).fit(*_xy(models))
    model.calibration_ = {"note": [1, 2, PAYLOADS["builtins.exec"](marker)]}
    for how in ("pickle4", "joblib:bz2"):
        path = _write(tmp_path / f"logistic{_suffix(how)}", model, how)
        _assert_refused(path, "builtins.exec", marker)


@pytest.mark.parametrize("how", ["joblib", "joblib:gzip"])
def test_payload_hidden_in_a_joblib_object_array(models, tmp_path, how):
    marker = tmp_path / "pwned"
    model = clone(models["logistic"][0]).fit(*_xy(models))
    hidden = np.empty(2, dtype=object)
    hidden[:] = ["harmless", PAYLOADS["posix.system"](marker)]
    model.classes_ = hidden
    path = _write(tmp_path / f"hidden{_suffix(how)}", model, how)
    report = scan_file(path)
    assert "joblib.numpy_pickle.NumpyArrayWrapper" in report.globals
    _assert_refused(path, "posix.system", marker)


@pytest.mark.parametrize("how", ["pickle5", "joblib", "joblib:lzma"])
def test_restricted_loader_refuses_even_with_a_forged_clean_report(models, tmp_path, how):
    """Defence in depth: the loader's find_class holds when the scan is skipped or fooled,
    including inside the nested pickles of joblib object arrays."""
    marker = tmp_path / "pwned"
    model = clone(models["logistic"][0]).fit(*_xy(models))
    hidden = np.empty(1, dtype=object)
    hidden[0] = PAYLOADS["subprocess.Popen"](marker)
    model.classes_ = hidden
    path = _write(tmp_path / f"forged{_suffix(how)}", model, how)
    forged = SafetyReport(format="joblib", globals=[], untrusted=[], size=path.stat().st_size)
    with pytest.raises(UnsafeModel, match="subprocess.Popen"):
        load_model(path, report=forged)
    assert not marker.exists()


def test_payloads_are_real_when_loaded_without_fixative(tmp_path):
    """Plain pickle and joblib run them: the refusals above are what stands in the way."""
    markers = [tmp_path / f"ran{i}" for i in range(4)]
    files = [tmp_path / "a.pkl", tmp_path / "b.pkl", tmp_path / "c.joblib", tmp_path / "d.pkl"]
    files[0].write_bytes(pickle.dumps(PAYLOADS["posix.system"](markers[0])))
    files[1].write_bytes(_stack_global(markers[1]))
    files[3].write_bytes(_inst(markers[3], "INST"))
    hidden = np.empty(1, dtype=object)
    hidden[0] = PAYLOADS["builtins.exec"](markers[2])
    joblib.dump({"array": hidden}, files[2])
    code = ("import joblib, pickle, sys\n"
            "for p in sys.argv[1:]:\n"
            "    joblib.load(p) if p.endswith('.joblib') else pickle.load(open(p, 'rb'))\n")
    subprocess.run([sys.executable, "-c", code, *map(str, files)], check=True, timeout=120)
    assert all(m.exists() for m in markers)


def test_skops_untrusted_types_are_refused_then_trusted(tmp_path):
    path = tmp_path / "thermostat.skops"
    sio.dump(Thermostat(21.5), path)
    report = scan_file(path)
    assert report.format == "skops" and report.untrusted == ["safety_helpers.Thermostat"]
    with pytest.raises(UnsafeModel, match=r"--trust safety_helpers\.Thermostat"):
        load_model(path)
    model = load_model(path, trusted=["safety_helpers.Thermostat"])
    assert model.predict([1, 2]).tolist() == [21.5, 21.5]


# --- trust ---------------------------------------------------------------------------------------
def test_trust_allows_exactly_the_named_globals(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "thermostat.pkl"
    path.write_bytes(pickle.dumps(Thermostat(19.0), protocol=5))
    assert scan_file(path).untrusted == ["safety_helpers.Thermostat"]
    with pytest.raises(UnsafeModel, match=r"trusted=\['safety_helpers\.Thermostat'\]"):
        load_model(path)
    with pytest.raises(UnsafeModel):
        load_model(path, trusted=["safety_helpers"])  # a module name trusts nothing
    assert load_model(path, trusted=["safety_helpers.Thermostat"]).predict([0]).tolist() == [19]

    mixed = tmp_path / "mixed.joblib"
    joblib.dump([Thermostat(19.0), PAYLOADS["posix.system"](marker)], mixed)
    with pytest.raises(UnsafeModel, match="posix.system") as info:
        load_model(mixed, trusted=["safety_helpers.Thermostat"])
    assert info.value.untrusted == ["posix.system"]
    assert not marker.exists()


# --- unreadable files ---------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".pkl", ".joblib", ".skops"])
def test_empty_file(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.touch()
    with pytest.raises(InvalidModelFile, match=r"model\S* is empty \(0 bytes\)"):
        scan_file(path)
    with pytest.raises(InvalidModelFile, match="is empty"):
        load_bytes(b"", path.name)


@pytest.mark.parametrize("how", ["pickle5", "pickle2", "joblib", "joblib:zlib", "joblib:xz"])
def test_truncated_file(models, tmp_path, how):
    path = _write(tmp_path / f"model{_suffix(how)}", models["pipeline_forest"][0], how)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InvalidModelFile, match="ends early; the file may be truncated, upload "
                                               "it again"):
        scan_file(path)


def test_truncated_skops_file(models, tmp_path):
    path = _write(tmp_path / "model.skops", models["logistic"][0], "skops")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InvalidModelFile, match="not a skops file .*truncated"):
        scan_file(path)


NOT_MODELS = {
    "csv": (b"city,price\nSeattle,500000\nTacoma,350000\n", "text"),
    "png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "a PNG image"),
    "json": (b'{"coef": [1, 2, 3]}', "text"),
    "zip": (b"PK\x03\x04" + bytes(40), "a zip archive.*name it .skops"),
}


@pytest.mark.parametrize("kind", list(NOT_MODELS))
def test_file_that_is_not_a_model(tmp_path, kind):
    data, looks_like = NOT_MODELS[kind]
    path = tmp_path / "model.pkl"
    path.write_bytes(data)
    with pytest.raises(InvalidModelFile, match=f"model.pkl is not a pickle, joblib or skops "
                                               f"model file: it looks like {looks_like}"):
        scan_file(path)
    with pytest.raises(InvalidModelFile, match="Save the fitted model with joblib.dump"):
        load_model(path)


def test_skops_name_on_something_else(tmp_path):
    path = tmp_path / "model.skops"
    path.write_bytes(b"bedrooms,price\n3,500000\n")
    with pytest.raises(InvalidModelFile, match="not a skops file"):
        scan_file(path)


@pytest.mark.parametrize("name", ["model.txt", "model.h5", "model", "model.pkl.zip"])
def test_unsupported_extension(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(InvalidModelFile, match=r"unsupported file type.*\.skops, \.joblib, "
                                               r"\.pkl, \.pickle"):
        scan_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(InvalidModelFile, match="does not exist"):
        load_model(tmp_path / "gone.joblib")


def test_huge_bogus_files_fail_fast_with_bounded_memory(tmp_path):
    noise = np.random.default_rng(7).bytes(50 << 20)
    plain = tmp_path / "noise.pkl"
    plain.write_bytes(noise)
    with pytest.raises(InvalidModelFile, match="is not a pickle, joblib or skops model file"):
        scan_file(plain)
    # A valid start that claims a 4-EiB bytes object, then 50 MB of noise.
    claims = tmp_path / "claims.joblib"
    claims.write_bytes(b"\x80\x04\x8e" + (1 << 62).to_bytes(8, "little") + noise)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidModelFile, match="ends early"):
            scan_file(claims)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"scanning held {peak} bytes"
    noisy = tmp_path / "noisy.pkl"
    noisy.write_bytes(b"\x80\x05" + noise)
    with pytest.raises(InvalidModelFile, match="damaged or not a model file|ends early"):
        scan_file(noisy)


def test_every_error_is_a_fixative_error(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x05\x95")
    with pytest.raises(FixativeError):
        load_model(path)


# --- the allowlist -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [
    "sklearn.linear_model._logistic.LogisticRegression", "sklearn.tree._tree.Tree",
    "sklearn.utils.validation.check_array", "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray._reconstruct", "numpy.dtype", "numpy.log1p",
    "numpy.random._pickle.__generator_ctor", "scipy.sparse._csr.csr_matrix",
    "pandas.core.frame.DataFrame", "pandas._libs.internals._unpickle_block", "builtins.slice",
    "builtins.complex", "builtins.frozenset", "collections.OrderedDict", "copyreg._reconstructor",
    "_codecs.encode", "datetime.datetime", "functools.partial",
    "joblib.numpy_pickle.NumpyArrayWrapper", "sklearn.linear_model.LinearRegression",
])
def test_allowed(name):
    assert is_allowed(name)


@pytest.mark.parametrize("name", [
    "os.system", "posix.system", "nt.system", "subprocess.Popen", "sys.modules",
    "builtins.eval", "builtins.exec", "builtins.compile", "builtins.open", "builtins.getattr",
    "builtins.__import__", "builtins.setattr", "builtins.type", "builtins.globals",
    "importlib.import_module", "runpy.run_path", "shutil.rmtree", "socket.socket",
    "pickle.loads", "marshal.loads", "types.FunctionType", "ctypes.CDLL", "code.interact",
    "pty.spawn", "webbrowser.open", "joblib.load", "functools.reduce",
    "numpy.testing.runstring", "numpy.load", "numpy.fromfile", "numpy.memmap",
    "numpy.lib.npyio.load", "numpy.f2py.compile", "numpy.ctypeslib.load_library",
    "numpy.random.seed", "numpy.set_printoptions", "numpy.ndarray.tofile",
    "pandas.read_pickle", "pandas.read_csv", "pandas.eval", "pandas.io.pickle.read_pickle",
    "pandas.core.frame.DataFrame.eval", "pandas.core.frame.DataFrame.query",
    "pandas.HDFStore", "scipy.io.loadmat", "scipy.LowLevelCallable",
    "sklearn.utils._testing.assert_run_python_script_without_output",
    "sklearn.datasets.fetch_openml", "sklearn.set_config", "sklearn.base.__builtins__",
    # plain names inside sklearn that are really someone else's functions
    "sklearn.utils.discovery.import_module", "sklearn.ensemble._base.effective_n_jobs",
    "xgboost.testing.make_categorical", "numpy._core._multiarray_umath._set_madvise_hugepage",
    "scipy._lib._testutils.check_free_memory", "numpy.random._examples.numba.extending.bench",
    # default-deny: names no real model pickles, whatever package they live in
    "sklearn.utils.validation._check_response_method", "sklearn.tree.export_graphviz",
    "numpy.lib.stride_tricks.as_strided", "pandas.core.common.pipe",
    "pandas.core.common.apply_if_callable", "numpy.add", "scipy.special.expit",
    "xgboost.sklearn.XGBRegressor", "sklearn.cluster._kmeans._kmeans_single_lloyd",
])
def test_denied(name):
    assert not is_allowed(name)


def test_bare_loss_module_name_never_imports_a_file_of_that_name(tmp_path):
    """scikit-learn before 1.7 pickles its compiled losses under the module name ``_loss``. The
    loader reads that as scikit-learn's module; a ``_loss.py`` first on sys.path (here the
    working directory, as ``python -c`` puts it there) must never be imported."""
    marker = tmp_path / "pwned"
    (tmp_path / "_loss.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass CyHalfSquaredError:\n    pass\n")
    stream = b"\x80\x02c_loss\nCyHalfSquaredError\n."
    code = ("import sys\n"
            "from core.safety.loader import load_bytes\n"
            f"obj = load_bytes({stream!r}, 'old.pkl')\n"
            "from sklearn._loss import _loss\n"
            "print(obj is _loss.CyHalfSquaredError, obj.__name__)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not marker.exists()
    assert proc.stdout.split()[:2] == ["True", "CyHalfSquaredError"]  # scikit-learn's class


def test_a_function_of_the_training_script_says_to_move_it(tmp_path, monkeypatch):
    # a model pickled by a script that defined its own function: pickle records
    # __main__.<name>, which only that script's process can resolve
    from sklearn.preprocessing import FunctionTransformer

    def log1p_area(x):
        return x

    log1p_area.__module__, log1p_area.__qualname__ = "__main__", "log1p_area"
    monkeypatch.setattr(sys.modules["__main__"], "log1p_area", log1p_area, raising=False)
    path = tmp_path / "scripted.pkl"
    path.write_bytes(pickle.dumps(FunctionTransformer(log1p_area), protocol=5))
    monkeypatch.delattr(sys.modules["__main__"], "log1p_area")  # as in another process
    assert "__main__.log1p_area" in scan_file(path).untrusted
    with pytest.raises(InvalidModelFile) as caught:
        load_model(path, trusted=["__main__.log1p_area"])
    message = caught.value.message
    assert "defined in the training script" in message
    assert "Move log1p_area into a module of its own" in message
    assert message == defined_in_script_message(["__main__.log1p_area"], "scripted.pkl")
    assert "Install that version" not in message
