"""The other side of the guard's differential test: CPython's own unpickler (the C
`_pickle` one that torch.load uses), restricted so that nothing runs.

Reads cases from the file argv[1] (each a little-endian u32 length, then a pickle) and
prints one JSON line per case: {"ok": true}, {"forbidden": "module.name"} (the first global
outside the allow-list that the unpickler asked for; it stops there), or {"error": "..."}
(the unpickler refused the stream). Every storage is backed by argv[2] bytes.

`find_class` hands out stand-ins that check their arguments as torch does (exact types;
a tensor's view must fit its storage) and return inert objects.
"""

import collections
import io
import json
import pickle
import struct
import sys

BOUND = int(sys.argv[2])


class Forbidden(Exception):
    pass


class StorageType:
    __slots__ = ("name", "element_bytes")

    def __init__(self, name, element_bytes):
        self.name, self.element_bytes = name, element_bytes


class Dtype:
    __slots__ = ("name", "bytes")

    def __init__(self, name, nbytes):
        self.name, self.bytes = name, nbytes


class Storage:
    __slots__ = ("key", "element_bytes", "numel")

    def __init__(self, key, element_bytes, numel):
        self.key, self.element_bytes, self.numel = key, element_bytes, numel


class Tensor:
    __slots__ = ()


def is_int(x):
    return type(x) is int


def check_view(storage, offset, size, stride, element_bytes):
    if type(size) is not tuple or type(stride) is not tuple:
        raise TypeError("size and stride must be tuples")
    if not all(is_int(v) and v >= 0 for v in size + stride) or len(size) != len(stride) or len(size) > 64:
        raise TypeError("bad size or stride")
    if not is_int(offset) or offset < 0:
        raise TypeError("bad offset")
    extent = 0 if 0 in size else offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if extent * element_bytes > storage.numel * storage.element_bytes:
        raise ValueError("view beyond its storage")


def rebuild_tensor(version):
    counts = {1: (4,), 2: (6, 7), 3: (7, 8)}[version]

    def rebuild(*args):
        if len(args) not in counts:
            raise TypeError("argument count")
        storage, offset, size, stride = args[:4]
        if type(storage) is not Storage:
            raise TypeError("not a storage")
        element_bytes = storage.element_bytes
        if version > 1:
            if type(args[4]) is not bool or type(args[5]) is not collections.OrderedDict:
                raise TypeError("requires_grad / backward_hooks")
            rest = args[6:]
            if version == 3:
                if type(rest[0]) is not Dtype:
                    raise TypeError("dtype")
                element_bytes, rest = rest[0].bytes, rest[1:]
            for r in rest:
                if not (r is None or type(r) in (dict, collections.OrderedDict)):
                    raise TypeError("metadata")
        check_view(storage, offset, size, stride, element_bytes)
        return Tensor()

    return rebuild


def rebuild_parameter(*args):
    if len(args) != 3 or type(args[0]) is not Tensor or type(args[1]) is not bool:
        raise TypeError("parameter arguments")
    if type(args[2]) is not collections.OrderedDict:
        raise TypeError("backward_hooks")
    return Tensor()


ALLOWED = {
    "collections.OrderedDict": collections.OrderedDict,
    "torch._utils._rebuild_tensor": rebuild_tensor(1),
    "torch._utils._rebuild_tensor_v2": rebuild_tensor(2),
    "torch._utils._rebuild_tensor_v3": rebuild_tensor(3),
    "torch._utils._rebuild_parameter": rebuild_parameter,
}
for name, nbytes in [("Float", 4), ("Double", 8), ("Half", 2), ("BFloat16", 2), ("Long", 8), ("Int", 4),
                     ("Short", 2), ("Char", 1), ("Byte", 1), ("Bool", 1)]:
    ALLOWED[f"torch.{name}Storage"] = StorageType(name, nbytes)
ALLOWED["torch.storage.UntypedStorage"] = StorageType("Untyped", 1)
for name, nbytes in [("float32", 4), ("float64", 8), ("float16", 2), ("bfloat16", 2), ("int64", 8)]:
    ALLOWED[f"torch.{name}"] = Dtype(name, nbytes)


class Restricted(pickle.Unpickler):
    def __init__(self, data):
        super().__init__(io.BytesIO(data), encoding="utf-8")
        self.storages = {}

    def find_class(self, module, name):
        full = f"{module}.{name}"
        if full not in ALLOWED:
            raise Forbidden(full)
        return ALLOWED[full]

    def persistent_load(self, pid):
        if type(pid) is not tuple or len(pid) not in (5, 6) or (len(pid) == 6 and pid[5] is not None):
            raise TypeError("persistent id shape")
        tag, stype, key, location, numel = pid[:5]
        if type(tag) is not str or tag != "storage" or type(stype) is not StorageType:
            raise TypeError("persistent id kind")
        if type(key) is not str or type(location) is not str or not is_int(numel) or numel < 0:
            raise TypeError("persistent id fields")
        if key in self.storages:
            seen = self.storages[key]
            if (seen.element_bytes, seen.numel) != (stype.element_bytes, numel):
                raise ValueError("storage described twice")
            return seen
        if numel * stype.element_bytes > BOUND:
            raise ValueError("storage beyond its bytes")
        storage = Storage(key, stype.element_bytes, numel)
        self.storages[key] = storage
        return storage


def judge(data):
    try:
        Restricted(data).load()
        return {"ok": True}
    except Forbidden as e:
        return {"forbidden": e.args[0]}
    except Exception as e:  # the unpickler refused the stream
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    blob = open(sys.argv[1], "rb").read()
    pos = 0
    out = sys.stdout
    while pos < len(blob):
        (n,) = struct.unpack_from("<I", blob, pos)
        pos += 4
        out.write(json.dumps(judge(blob[pos:pos + n])) + "\n")
        pos += n


if __name__ == "__main__":
    main()
