"""Names that no trust can admit, and what a name is (for messages that ask for trust).

Trust exists for a person's own model code: their transformer class, their scoring function.
It must never reach a name that runs code, starts a process, loads another pickle, marshal,
joblib or ``.npy`` file, writes files, opens connections, reaches memory by address, or hands
back attributes or calls its arguments (the gadgets that chain into the others). Denylists of
single names lose, so the rule is by kind:

1. Whole modules whose purpose is one of those (``RUNNERS``): nothing in them, class or
   function, can be trusted, at any depth (``os.path`` too: a model needs none of it).
2. In the model libraries (scikit-learn, NumPy, SciPy, pandas, joblib, pyarrow, skops, ...)
   trust admits only public classes and public functions outside their I/O, testing,
   evaluation and memory modules; a private helper of a library is never a person's model code,
   and what real models need from the libraries is on the admitted list already.
3. Anywhere, functions named like a loader, writer, runner or attribute getter
   (``load``, ``read_*``, ``to_*``, ``save*``, ``export_*``, ``run*``, ``exec*``, ``*attr*``,
   ``pipe``, ``apply_if_callable``, ``as_strided``, ...) and known gadget classes.
4. A name that resolves (where importing is harmless: a library, or a module already loaded) is
   also judged under the module and name where it is really defined, so a re-export of
   ``os.system`` or ``importlib.import_module`` in some other package stays refused.
"""

from __future__ import annotations

import importlib
import re
import sys
import types
from typing import Any

from core.safety.admitted import EXCLUDED

# Modules (and their submodules) that run code, start processes, load or write data, reach the
# network or the interpreter's internals. Ordered by theme for review.
RUNNERS = frozenset({
    # processes, code, interpreters
    "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "_posixsubprocess", "pty", "tty",
    "runpy", "code", "codeop", "compileall", "py_compile", "ast", "dis", "symtable",
    "importlib", "imp", "zipimport", "pkgutil", "modulefinder", "site", "sysconfig",
    "ensurepip", "venv", "distutils", "setuptools", "pip", "_distutils_hack",
    "cProfile", "profile", "_lsprof", "pstats", "timeit", "trace", "tracemalloc", "pdb", "bdb",
    "pydoc", "doctest", "unittest", "test", "idlelib", "lib2to3", "faulthandler",
    "sys", "gc", "inspect", "types", "builtins", "__builtin__", "_interpreters",
    "_xxsubinterpreters", "concurrent", "multiprocessing", "_multiprocessing", "threading",
    "_thread", "asyncio", "signal", "atexit", "sched", "weakref", "_weakref", "copy",
    "ctypes", "_ctypes", "cffi", "mmap", "resource", "fcntl", "termios", "msvcrt", "_winapi",
    "winreg", "numba", "llvmlite", "cython", "Cython",
    # functions over functions and attributes: the getattr-chain gadgets
    "operator", "_operator", "functools", "_functools", "itertools", "contextlib",
    # other loaders of code or objects
    "pickle", "_pickle", "cPickle", "pickletools", "copyreg", "copy_reg", "marshal", "shelve",
    "dbm", "dill", "cloudpickle", "joblib", "skops", "torch", "tensorflow", "keras",
    # files, archives, logging that writes or listens
    "io", "_io", "pathlib", "shutil", "tempfile", "glob", "fileinput", "linecache", "tarfile",
    "zipfile", "gzip", "bz2", "lzma", "zlib", "codecs", "_codecs", "sqlite3", "logging",
    "fsspec", "s3fs", "duckdb", "pyarrow", "h5py", "tables", "streamlit", "core",
    # network, browsers, the desktop
    "socket", "_socket", "ssl", "select", "selectors", "socketserver", "http", "urllib",
    "urllib3", "requests", "httpx", "ftplib", "smtplib", "poplib", "imaplib", "nntplib",
    "telnetlib", "xmlrpc", "wsgiref", "webbrowser", "antigravity", "this", "tkinter", "turtle",
    "platform", "uuid", "mailcap", "cgi", "cgitb",
})

# Submodules of the model libraries that read or write files, evaluate strings, test, build,
# expose raw memory or hand back attributes; matched as whole path components.
_LIBRARY_ROOTS = frozenset({"sklearn", "numpy", "scipy", "pandas", "xgboost", "lightgbm",
                            "catboost", "statsmodels"})
_LIBRARY_PARTS = frozenset({
    "io", "_io", "npyio", "_npyio_impl", "format", "_format_impl", "_datasource", "memmap",
    "ctypeslib", "_ctypeslib", "stride_tricks", "_stride_tricks_impl", "testing", "_testing",
    "f2py", "distutils", "_pytesttester", "conftest", "datasets", "externals", "_joblib",
    "computation", "eval", "_ccallback", "misc", "weave", "plotting", "clipboard", "utils",
    "common", "_config", "estimator_checks", "tree/_export", "_export", "dask", "spark",
    "callback", "tracker", "collective", "compat", "api",
})
# Function names that load, write, run, evaluate, fetch attributes or call arguments.
_GADGET_NAMES = re.compile(
    r"^(load|loads|dump|dumps|save|savez|savez_compressed|savetxt|loadtxt|genfromtxt|fromfile|"
    r"tofile|fromregex|fromstring|open|open_memmap|memmap|eval|exec|compile|system|popen|"
    r"query|pipe|apply_if_callable|maybe_callable|as_strided|sliding_window_view|"
    r"runstring|lookfor|source|info|seed|getattr|setattr|delattr|attrgetter|methodcaller|"
    r"itemgetter|partial|reduce|call|import_module|from_address|foreign_buffer|"
    r"LowLevelCallable|DataSource|HDFStore|ExcelWriter)$"
    r"|^(read_|to_|save_|load_|dump_|export_|fetch_|download|exec|spawn|fork|popen|"
    r"run(ctx|call|eval|string|source|code|_path|_module)?$)")
# Classes that are gadgets wherever they live.
_GADGET_CLASSES = frozenset({
    "types.FunctionType", "types.CodeType", "types.MethodType", "types.LambdaType",
    "builtins.function", "builtins.code", "builtins.type", "builtins.staticmethod",
    "builtins.classmethod", "builtins.property", "builtins.super", "builtins.memoryview",
    "operator.attrgetter", "operator.methodcaller", "operator.itemgetter",
    "functools.partial", "functools.partialmethod", "numpy.memmap", "numpy.lib.stride_tricks."
    "DummyArray", "scipy.LowLevelCallable", "pandas.HDFStore", "pandas.ExcelWriter",
})


def _root(module: str) -> str:
    return module.split(".")[0]


def _by_name(module: str, name: str, is_class: bool | None) -> str | None:
    """Why ``module.name`` can never be trusted, judged by its spelling; None if it can."""
    full = f"{module}.{name}"
    root = _root(module)
    if root in RUNNERS:
        return (f"module {root} runs code, starts processes, loads or writes data, or hands "
                "back attributes")
    if full in _GADGET_CLASSES:
        return "it is a class that builds code, calls or fetches attributes, or maps memory"
    if "." in name and is_class is not True:
        return "it is an attribute of a class or object, not a module-level name"
    parts = module.split(".")[1:] + name.split(".")[:-1]
    if root in _LIBRARY_ROOTS:
        if any(p in _LIBRARY_PARTS or p.lstrip("_").startswith(("test", "bench", "example"))
               for p in parts):
            return (f"{module} is the part of {root} that reads or writes files, tests, "
                    "evaluates strings or fetches attributes")
        if is_class is not True and any(p.startswith("_") for p in name.split(".")):
            return (f"it is a private function of {root}; what models need from {root} is "
                    "admitted already, and trust is for your own code")
    last = name.split(".")[-1]
    if is_class is not True and _GADGET_NAMES.match(last):
        return ("its name says it loads, writes, runs, evaluates, fetches attributes or calls "
                "its argument")
    if re.fullmatch(r"__\w+__", last):
        return "it is a special (dunder) name"
    return None


def _resolvable(module: str) -> bool:
    """Import only what is harmless to import: a library, or a module already loaded."""
    return module in sys.modules or _root(module) in _LIBRARY_ROOTS


def _resolve(module: str, name: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def why_never_trusted(full: str) -> str | None:
    """Why ``full`` (``module.qualname``) can never be trusted, or None when trust may admit it.
    Judged by the name as written, and where it is harmless to look, by the object it names
    and the place it is really defined."""
    module, _, name = full.rpartition(".")
    if not module or not name:
        return "it is not a MODULE.NAME"
    if full in EXCLUDED:
        return f"it was reviewed and left out: {EXCLUDED[full]}"
    why = _by_name(module, name, True)
    if why is not None:
        return why  # refused whatever the object is
    obj = None
    if _resolvable(module):
        try:
            obj = _resolve(module, name)
        except Exception:  # noqa: BLE001 - unresolved: judged by its name alone
            obj = None
    if obj is None:
        return _by_name(module, name, None)  # unknown kind: judged as strictly as a function
    if isinstance(obj, types.ModuleType):
        return "it is a module, not a class or a function"
    owner = getattr(obj, "__self__", None)
    if owner is not None and not isinstance(owner, types.ModuleType):
        return "it is a method bound to an object, which acts on that object's hidden state"
    is_class = isinstance(obj, type)
    why = _by_name(module, name, is_class)
    if why is not None:
        return why
    where, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(where, str) and isinstance(qual, str) and (where, qual) != (module, name):
        why = _by_name(where, qual, is_class)
        if why is not None:
            return f"it is really {where}.{qual}, and {why}"
    return None


def never_trusted(full: str) -> bool:
    """Whether ``full`` is beyond trust (see :func:`why_never_trusted`)."""
    return why_never_trusted(full) is not None


def kind_of(full: str) -> str:
    """What ``full`` is, e.g. ``class in mypkg``; a module that is not loaded yet is not
    imported to find out (importing runs its code)."""
    module, _, name = full.rpartition(".")
    if not _resolvable(module):
        return f"a name in module {module}, not imported yet, so not known to be a class"
    try:
        obj = _resolve(module, name)
    except Exception:  # noqa: BLE001
        return f"not found in module {module}"
    kind = "class" if isinstance(obj, type) else "function" if callable(obj) else "value"
    return f"{kind} in {module}"


def describe(full: str) -> str:
    """``full`` with what it is, e.g. ``mypkg.Scaler (class in mypkg)``."""
    return f"{full} ({kind_of(full)})"
