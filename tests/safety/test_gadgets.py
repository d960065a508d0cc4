"""The red-team gadgets of issue #11, built for real and refused: default-deny by exact name,
checked calls, skops types, trust that cannot reach code runners, and decompression bombs.

Every payload would create a marker file; each test checks the marker is still absent. Where a
gadget crashes the interpreter (memory by address), it is loaded in a subprocess.
"""

from __future__ import annotations

import bz2
import cProfile
import doctest
import json
import os
import pickle
import subprocess
import sys
import timeit
import tracemalloc
import warnings
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from numpy.lib.stride_tricks import as_strided
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeClassifier, export_graphviz
from sklearn.utils.validation import _check_response_method, check_array

from core.errors import InvalidModelFile, UnsafeModel
from core.safety.loader import load_bytes, load_model, scan_file
from core.safety.untrustable import never_trusted, why_never_trusted

ROOT = Path(__file__).resolve().parents[2]


class _Call:
    """Pickles as ``func(*args)`` (and then ``result[k] = v`` for ``items``)."""

    def __init__(self, func, *args, items=None) -> None:
        self.func, self.args, self.items = func, args, items

    def __call__(self, *args):  # pickle wants the callable of a reduce to look callable
        raise AssertionError("never called here")

    def __reduce__(self):
        if self.items is None:
            return self.func, self.args
        return self.func, self.args, None, None, iter(self.items)


def _touch(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _getattr_chain(marker: Path) -> _Call:
    """The red-team chain: _check_response_method(obj, name) is getattr(obj, name), so
    check_array.__globals__['__builtins__']['exec'](code)."""
    get = _check_response_method
    globals_ = _Call(get, check_array, "__globals__")
    builtins_ = _Call(_Call(get, globals_, "get"), "__builtins__")
    exec_ = _Call(_Call(get, builtins_, "get"), "exec")
    return _Call(exec_, _touch(marker))


def _fitted_with(extra) -> LinearRegression:
    model = LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0])
    model.notes_ = extra
    return model


def _plain_load_runs(path: Path) -> subprocess.CompletedProcess:
    code = ("import sys, pickle, joblib\n"
            "p = sys.argv[1]\n"
            "joblib.load(p) if p.endswith('.joblib') else pickle.load(open(p, 'rb'))\n")
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          timeout=120, cwd=ROOT)


# --- getattr chains ------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".pkl", ".joblib"])
def test_getattr_chain_through_check_response_method(tmp_path, suffix):
    marker = tmp_path / "pwned"
    path = tmp_path / f"linear{suffix}"
    model = _fitted_with(_getattr_chain(marker))
    joblib.dump(model, path) if suffix == ".joblib" else path.write_bytes(pickle.dumps(model))
    name = "sklearn.utils.validation._check_response_method"
    report = scan_file(path)
    assert not report.ok and report.untrusted == [name]
    with pytest.raises(UnsafeModel, match=rf"would run {name} when it is loaded.*attributes"):
        load_model(path)
    with pytest.raises(UnsafeModel, match="cannot be trusted or loaded"):
        load_model(path, trusted=[name])
    assert not marker.exists()
    assert _plain_load_runs(path).returncode == 0 and marker.exists(), "the chain is real"


# --- file writers and memory by address ----------------------------------------------------------
def test_export_graphviz_writes_files_and_is_refused(tmp_path):
    marker = tmp_path / "written.dot"
    tree = DecisionTreeClassifier(max_depth=1).fit([[0], [1]], [0, 1])
    path = tmp_path / "tree.pkl"
    path.write_bytes(pickle.dumps({"tree": tree, "x": _Call(export_graphviz, tree, str(marker))}))
    name = "sklearn.tree._export.export_graphviz"
    assert scan_file(path).untrusted == [name]
    for trusted in ([], [name]):
        with pytest.raises(UnsafeModel, match=name):
            load_model(path, trusted=trusted)
    assert not marker.exists()
    assert _plain_load_runs(path).returncode == 0 and marker.exists(), "the writer is real"


def _strided_bomb(tmp_path: Path) -> Path:
    """as_strided gives a view far past its 8 bytes; SETITEM then writes there."""
    base = np.zeros(1, dtype=np.int64)
    view = _Call(as_strided, base, (2,), (1 << 40,), items=[(1, 7)])
    path = tmp_path / "strided.pkl"
    path.write_bytes(pickle.dumps({"coef": view}, protocol=2))
    return path


def test_as_strided_write_is_refused_without_a_crash(tmp_path):
    path = _strided_bomb(tmp_path)
    plain = _plain_load_runs(path)
    assert plain.returncode < 0, "plain pickle dies of the out-of-bounds write"
    code = ("import sys\n"
            "from core.errors import UnsafeModel\n"
            "from core.safety.loader import load_model\n"
            "for trusted in ([], ['numpy.lib.stride_tricks.as_strided']):\n"
            "    try:\n"
            "        load_model(sys.argv[1], trusted=trusted)\n"
            "    except UnsafeModel as exc:\n"
            "        print(exc.message)\n")
    ours = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert ours.returncode == 0, ours.stderr
    refusals = ours.stdout.splitlines()
    assert len(refusals) == 2
    assert all("as_strided" in r and "cannot be trusted" in r for r in refusals)


# --- calls are checked, not only names ----------------------------------------------------------
def _raw(*parts: bytes) -> bytes:
    return b"\x80\x02" + b"".join(parts) + b"."


def _global(full: str) -> bytes:
    module, _, name = full.rpartition(".")
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _text(s: str) -> bytes:
    return b"X" + len(s.encode()).to_bytes(4, "little") + s.encode()


LINEAR = "sklearn.linear_model._base.LinearRegression"
CHECKED_CALLS = {
    # a value-only function called by the stream
    "value_called": (_raw(_global("numpy.mean"), b"]", b"\x85R"), "never calls"),
    # a class the record only shows created without arguments, called with one
    "class_called": (_raw(_global(LINEAR), _text("x"), b"\x85R"), "calls the class"),
    # numpy's array reconstructor handed an estimator class instead of an array class
    "reconstruct_subtype": (_raw(_global("numpy._core.multiarray._reconstruct"),
                                 _global(LINEAR), b"K\x00\x85", _text("b"), b"\x87R"),
                            "accepts only admitted classes of kind ndarray"),
    # copyreg._reconstructor with a class that is not admitted cannot even be named; with an
    # admitted class as base that is not a class at all
    "reconstructor_base": (_raw(_global("copyreg._reconstructor"), _global(LINEAR),
                                _global("numpy.mean"), b"N\x87R"), "accepts only admitted"),
    # BUILD that would rewrite an admitted class itself
    "build_on_class": (_raw(_global(LINEAR), b"}", _text("predict"), b"N", b"sb"),
                       "did not create"),
    # BUILD that points numpy at memory by address through __array_interface__
    "dunder_state": (_raw(_global(LINEAR), b")\x81", b"}", _text("__array_interface__"),
                          b"}sb"), "special attribute '__array_interface__'"),
    # SETITEM into something that is not a dict (here: a fresh estimator)
    "setitem_target": (_raw(_global(LINEAR), b")\x81", _text("a"), b"K\x01s"),
                       "only plain lists, dicts"),
    # numpy's generator reconstructor calls its second argument: only numpy's own is allowed
    "generator_ctor": (_raw(_global("numpy.random._pickle.__generator_ctor"), _text("MT19937"),
                            _global("numpy.dtype"), b"\x86R"), "bit generator constructor"),
    # functools.partial binding something the file built itself
    "partial_bound": (_raw(_global("functools.partial"), b"]", b"\x85R"), "binds"),
}


@pytest.mark.parametrize("case", list(CHECKED_CALLS))
def test_admitted_names_are_checked_where_they_are_used(case):
    data, message = CHECKED_CALLS[case]
    with pytest.raises(UnsafeModel, match=message):
        load_bytes(data, f"{case}.pkl")


def test_guards_also_check_later_calls_by_model_code():
    """A reconstructor comes back wrapped: model code that calls it later is checked too."""
    data = pickle.dumps(FunctionTransformer(func=np.mean).fit([[1.0]]), protocol=2)
    data = data.replace(b"cnumpy\nmean\n", b"cnumpy._core.multiarray\n_reconstruct\n")
    model = load_bytes(data, "ft.pkl")
    with pytest.raises(UnsafeModel, match=r"calls numpy\._core\.multiarray\._reconstruct"):
        model.transform([[1.0]])


# --- skops ---------------------------------------------------------------------------------------
SKOPS_FUNCS = [_check_response_method, pd.core.common.pipe, pd.core.common.apply_if_callable]


@pytest.mark.parametrize("func", SKOPS_FUNCS, ids=lambda f: f.__name__)
def test_skops_function_transformer_chain_is_refused(tmp_path, func):
    marker = tmp_path / "pwned"
    pipe = make_pipeline(FunctionTransformer(func=func, kw_args={"x": _touch(marker)}),
                         FunctionTransformer(func=_check_response_method))
    path = tmp_path / "chain.skops"
    sio.dump(pipe, path)
    name = f"{func.__module__}.{func.__name__}"
    report = scan_file(path)
    assert name in report.untrusted and name in report.forbidden
    for trusted in ([], sio.get_untrusted_types(file=path)):
        with pytest.raises(UnsafeModel, match=f"would run .*{name}"):
            load_model(path, trusted=trusted)
    assert not marker.exists()


def test_skops_gets_only_admitted_types(tmp_path, house_model, house_data):
    path = tmp_path / "houses.skops"
    sio.dump(house_model, path)
    assert scan_file(path).ok
    rows = house_data.drop(columns=["price"])
    np.testing.assert_array_equal(load_model(path).predict(rows), house_model.predict(rows))


# --- trust that can never reach code --------------------------------------------------------------
RUNNERS = [
    "cProfile.run", "timeit.timeit", "pdb.run", "pydoc.pipepager", "_posixsubprocess.fork_exec",
    "doctest.debug_script", "numpy.testing._private.utils.runstring", "joblib.load",
    "pandas.read_pickle", "numpy.load", "profile.run", "trace.Trace", "bdb.Bdb",
    "idlelib.run.main", "distutils.spawn.spawn", "asyncio.subprocess.create_subprocess_shell",
    "concurrent.futures.ProcessPoolExecutor", "zipimport.zipimporter", "ensurepip.bootstrap",
    "venv.create", "logging.config.listen", "site.execsitecustomize", "sysconfig.get_paths",
    "os.system", "posix.system", "nt.spawnv", "subprocess.Popen", "pty.spawn", "runpy.run_path",
    "code.interact", "codeop.compile_command", "importlib.import_module", "imp.load_source",
    "pickle.loads", "_pickle.loads", "marshal.loads", "shelve.open", "dill.loads",
    "cloudpickle.loads", "ctypes.CDLL", "_ctypes.dlopen", "builtins.eval", "builtins.exec",
    "builtins.compile", "builtins.__import__", "builtins.getattr", "builtins.setattr",
    "builtins.open", "builtins.globals", "builtins.vars", "builtins.breakpoint", "builtins.input",
    "builtins.type", "types.FunctionType", "types.CodeType", "operator.attrgetter",
    "operator.methodcaller", "operator.itemgetter", "functools.reduce", "functools.partial",
    "shutil.rmtree", "tempfile.mkstemp", "socket.socket", "http.client.HTTPConnection",
    "urllib.request.urlopen", "webbrowser.open", "multiprocessing.Process", "threading.Thread",
    "signal.signal", "sys.setprofile", "gc.get_referrers", "inspect.getmembers",
    "numpy.loadtxt", "numpy.fromfile", "numpy.save", "numpy.memmap", "numpy.ctypeslib.as_array",
    "numpy.lib.stride_tricks.as_strided", "numpy.lib.format.read_array", "pandas.read_csv",
    "pandas.eval", "pandas.core.computation.eval.eval", "pandas.io.pickle.to_pickle",
    "pandas.core.common.pipe", "pandas.core.common.apply_if_callable",
    "sklearn.tree.export_graphviz", "sklearn.tree.export_text",
    "sklearn.utils.validation._check_response_method",
    "sklearn.utils._response._get_response_values",
    "scipy.LowLevelCallable", "pyarrow.foreign_buffer", "antigravity.fly", "weakref.finalize",
    "atexit.register", "copy.deepcopy", "pickletools.dis", "torch.load", "core.store.VersionStore",
    "sklearn.utils.discovery.import_module", "skops.io.load", "pandas.DataFrame.query",
    "numpy.ndarray.tofile", "operator.call", "contextlib.closing", "io.open", "pathlib.Path",
]


@pytest.mark.parametrize("name", RUNNERS)
def test_code_runners_can_never_be_trusted(name):
    assert never_trusted(name), name
    assert why_never_trusted(name)


@pytest.mark.parametrize("name", ["mypkg.MyTransformer", "safety_helpers.Thermostat",
                                  "numpy.log1p", "sklearn.svm.SVC", "xgboost.XGBRegressor",
                                  "mymodels.scoring.weighted_error"])
def test_own_code_and_public_library_classes_can_be_trusted(name):
    assert why_never_trusted(name) is None


CALLED = {
    "cProfile.run": lambda m: _Call(cProfile.run, _touch(m)),
    "timeit.timeit": lambda m: _Call(timeit.timeit, _touch(m), "pass", timeit.default_timer, 1),
    "doctest.debug_script": lambda m: _Call(doctest.debug_script, _touch(m)),
    "numpy.testing._private.utils.runstring":
        lambda m: _Call(np.testing._private.utils.runstring, _touch(m), {}),
}


def _evil_pickle(tmp_path: Path, marker: Path) -> Path:
    inner = tmp_path / "inner.pkl"
    inner.write_bytes(pickle.dumps(_Call(exec, _touch(marker))))
    return inner


def _runner_file(tmp_path: Path, name: str, marker: Path) -> Path:
    if name in CALLED:
        payload = CALLED[name](marker)
    elif name == "numpy.load":  # an .npy of objects is a pickle inside
        inner = tmp_path / "inner.npy"
        hidden = np.empty(1, dtype=object)
        hidden[0] = _Call(exec, _touch(marker))
        np.save(inner, hidden, allow_pickle=True)
        payload = _Call(np.load, str(inner), None, True)
    else:  # nested loaders, pointed at a pickle that runs the payload
        inner = _evil_pickle(tmp_path, marker)
        func = {"joblib.load": joblib.load, "pandas.read_pickle": pd.read_pickle}[name]
        payload = _Call(func, str(inner))
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(_fitted_with(payload)))
    return path


TRUSTED_RUNNERS = [*CALLED, "joblib.load", "pandas.read_pickle", "numpy.load"]


@pytest.mark.parametrize("name", TRUSTED_RUNNERS)
def test_trusted_runners_are_refused_everywhere(tmp_path, capsys, name):
    from core.cli.main import main
    from core.store.upload import upload
    from core.store.versionstore import VersionStore

    marker = tmp_path / "pwned"
    path = _runner_file(tmp_path, name, marker)
    # trust everything the file names (as pickle writes it, e.g. joblib.numpy_pickle.load)
    untrusted = scan_file(path).untrusted
    assert any(never_trusted(n) for n in untrusted)
    with pytest.raises(UnsafeModel, match="cannot be trusted or loaded"):
        load_model(path, trusted=untrusted)
    board = tmp_path / "board"
    flags = [arg for n in untrusted for arg in ("--trust", n)]
    code = main(["write", str(path), "--name", "x", *flags, "--store", str(board)])
    assert code != 0 and "cannot be trusted" in capsys.readouterr().err
    store = VersionStore(str(board))
    with pytest.raises(UnsafeModel, match="cannot be trusted"):
        upload(store, path.read_bytes(), "x.pkl", name="x", trusted=untrusted)
    assert store.list_models() == []
    assert not marker.exists()
    if name in ("numpy.load", "cProfile.run"):  # the payloads are real
        assert _plain_load_runs(path).returncode == 0 and marker.exists()


# --- decompression bombs --------------------------------------------------------------------------
def _wrapper(shape: tuple[int, ...]) -> bytes:
    """joblib's header for a float64 array of ``shape``; the array bytes follow it."""
    from joblib.numpy_pickle import NumpyArrayWrapper

    wrapper = NumpyArrayWrapper(np.ndarray, shape, "C", np.dtype("float64"))
    return pickle.dumps(wrapper, protocol=2)[:-1]  # without STOP


def _bz2_bomb(path: Path, gib: int = 1) -> Path:
    """A real joblib.bz2 file whose one array is ``gib`` GiB of zeros. bz2 files may hold
    several streams, so 64 MiB of zeros is compressed once and repeated."""
    zeros = bz2.compress(bytes(64 << 20), 9)
    assert len(bz2.decompress(zeros)) == 64 << 20
    with path.open("wb") as fh:
        fh.write(bz2.compress(_wrapper((gib << 27,)) + b"\x00"))  # no alignment padding
        for _ in range(gib * 16):
            fh.write(zeros)
        fh.write(bz2.compress(b"."))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return _bz2_bomb(tmp_path_factory.mktemp("bomb") / "model.joblib.bz2")


def test_bz2_bomb_is_refused_at_the_unpack_limit_with_bounded_memory(bomb):
    assert bomb.stat().st_size < 4096  # 1 GiB of zeros (16 streams of 64 MiB, checked below)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidModelFile, match=r"unpacks to more than 64 MiB, far more than "
                                                   r"100 times its .* on disk \(FIXATIVE_MAX_"
                                                   r"UNPACK_RATIO\): it looks like a "
                                                   r"decompression bomb.*FIXATIVE_MAX_MODEL_BYTES"):
            scan_file(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"scanning held {peak} bytes"
    with pytest.raises(InvalidModelFile, match="decompression bomb"):
        load_model(bomb)


def test_bomb_limits_are_settings(bomb, tmp_path, monkeypatch, house_model):
    monkeypatch.setenv("FIXATIVE_MAX_UNPACK_RATIO", "1000000")
    monkeypatch.setenv("FIXATIVE_MAX_MODEL_BYTES", str(256 << 20))
    with pytest.raises(InvalidModelFile, match=r"more than the limit of 256 MiB "
                                               r"\(FIXATIVE_MAX_MODEL_BYTES\)"):
        scan_file(bomb)
    monkeypatch.setenv("FIXATIVE_MAX_MODEL_BYTES", "1000")
    path = tmp_path / "houses.joblib"
    joblib.dump(house_model, path)
    with pytest.raises(InvalidModelFile, match="FIXATIVE_MAX_MODEL_BYTES"):
        scan_file(path)  # the cap holds for uncompressed files too
    monkeypatch.setenv("FIXATIVE_MAX_MODEL_BYTES", "lots")
    with pytest.raises(InvalidModelFile,
                       match=r"FIXATIVE_MAX_MODEL_BYTES must be a whole number of bytes.*'lots'"):
        scan_file(path)


def test_declared_size_beyond_the_data_fails_fast(tmp_path):
    """~21 KB that declares a 15.9 GiB array: refused by the cap before anything is allocated."""
    path = tmp_path / "claims.joblib.bz2"
    comp = bz2.BZ2Compressor(9)
    with path.open("wb") as fh:
        fh.write(comp.compress(_wrapper((int(15.9 * (1 << 27)),)) + b"\x00" + bytes(64 << 20)))
        fh.write(comp.flush())
    with pytest.raises(InvalidModelFile, match="ends early|decompression bomb"):
        scan_file(path)


def test_skops_zip_bomb(tmp_path, monkeypatch, house_model):
    path = tmp_path / "houses.skops"
    sio.dump(house_model, path)
    monkeypatch.setenv("FIXATIVE_MAX_MODEL_BYTES", "4096")
    with pytest.raises(InvalidModelFile, match="decompression bomb.*FIXATIVE_MAX_MODEL_BYTES"):
        scan_file(path)


# --- every model in the derived corpus loads without trust --------------------------------------
def test_record_is_reviewed():
    from core.safety.admitted import EXCLUDED, GUARDS, VALUES, counts, record

    rec = record()
    assert set(rec["functions"]) <= set(GUARDS) | VALUES | set(EXCLUDED)
    assert not [n for n in VALUES if "call" in rec["functions"].get(n, ())]
    assert len(rec["fitted"]) > 180 and counts()["classes"] > 250
    assert not [n for n in rec["functions"] if never_trusted(n) and n in VALUES
                and not n.startswith(("sklearn.", "scipy._lib"))]
    assert json.loads(json.dumps(rec)) == rec


SAMPLE = ["RandomForestClassifier", "HistGradientBoostingRegressor", "KNeighborsClassifier",
          "NearestNeighbors", "SGDClassifier", "MLPRegressor",
          "GaussianMixture", "SplineTransformer", "TargetEncoder", "IsolationForest",
          "SelectKBest", "SimpleImputer", "StackingClassifier", "TunedThresholdClassifierCV"]


@pytest.fixture(scope="module")
def corpus():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import derive_admitted
    finally:
        sys.path.pop(0)
    return derive_admitted


@pytest.mark.parametrize("estimator", SAMPLE)
def test_corpus_models_load_without_trust(corpus, estimator):
    from sklearn.utils import all_estimators

    cls = dict(all_estimators())[estimator]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the corpus fits tiny tables: convergence warnings
        model = corpus._fit(corpus._construct(cls), corpus._data())
    for blob in corpus._dumps(model):
        assert type(load_bytes(blob, "model.pkl")) is cls  # the format is found from content


def test_corpus_frames_and_values_load_without_trust(corpus):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frames = corpus._frames()
    for name, obj in frames.items():
        for blob in corpus._dumps(obj)[2:4]:  # protocol 5 and plain joblib
            loaded = load_bytes(blob, f"{name}.pkl")
            assert type(loaded) is type(obj), name


def test_environment_was_not_changed():
    assert "FIXATIVE_MAX_MODEL_BYTES" not in os.environ
