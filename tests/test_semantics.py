"""PyTorch semantics of the engine core: type promotion, gradient dtypes, integer inputs, Python
protocols, the overloads of max/min/var/std/clamp, 0-d reductions, the top-level namespace and the
errors of binary ops. Each rule is checked against a reference written here (by hand or in NumPy)
and, when torch is installed, against torch itself."""
import itertools
import operator

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv import functional as F

# ============================================================================ type promotion
DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]
INTS = ["uint8", "int8", "int16", "int32", "int64"]
# An operand: ("tensor", dtype) of shape (3,), ("0d", dtype), or a Python scalar ("int"/"float"/"bool").
OPERANDS = [("tensor", d) for d in DTYPES] + [("0d", d) for d in DTYPES] + [("int", None), ("float", None),
                                                                            ("bool", None)]
PYTHON_DTYPE = {"int": "int64", "float": "float32", "bool": "bool"}  # what a Python scalar stands for
TIER = {"tensor": 2, "0d": 1, "int": 0, "float": 0, "bool": 0}


def category(dtype):
    return 0 if dtype == "bool" else 1 if dtype in INTS else 2


def promote_two(a, b):
    """A hand-written promotion table for two dtypes of one category."""
    if a == b:
        return a
    if category(a) == 2:
        return max(a, b, key=lambda d: int(d[5:]))  # the wider float
    if {a, b} == {"uint8", "int8"}:
        return "int16"
    return max(a, b, key=lambda d: (int(d.lstrip("uint")), d.startswith("i")))


def expected_dtype(ops):
    """The rule as PyTorch's docs state it: the result has the highest category present; its size is
    given by the operands of that category in the highest tier (dimensioned, then 0-d, then Python)."""
    dtypes = [(TIER[kind], PYTHON_DTYPE.get(kind, d)) for kind, d in ops]
    top = max(category(d) for _, d in dtypes)
    tier = max(t for t, d in dtypes if category(d) == top)
    chosen = [d for t, d in dtypes if t == tier and category(d) == top]
    result = chosen[0]
    for d in chosen[1:]:
        result = promote_two(result, d)
    return result


def value_of(kind, dtype, base):
    """The operand as a tinygrad_cv value (and its float64 values for the reference). Tensors hold a
    zero, so division meets inf and NaN too (hence the ``np.errstate`` below)."""
    if kind == "tensor":
        v = np.array([base, 1, 0]) if dtype != "bool" else np.array([True, True, False])
        return tg.tensor(v.astype(dtype)), v.astype(dtype).astype(np.float64)
    if kind == "0d":
        v = np.array(base if dtype != "bool" else True)
        return tg.tensor(v.astype(dtype)), v.astype(dtype).astype(np.float64)
    v = {"int": base, "float": base + 0.5, "bool": True}[kind]
    return v, np.float64(v)


def torch_value(torch, kind, dtype, base):
    if kind == "tensor":
        v = [base, 1, 0] if dtype != "bool" else [True, True, False]
        return torch.tensor(v, dtype=getattr(torch, dtype))
    if kind == "0d":
        return torch.tensor(base if dtype != "bool" else True, dtype=getattr(torch, dtype))
    return {"int": base, "float": base + 0.5, "bool": True}[kind]


BINARY = {"add": (operator.add, np.add), "sub": (operator.sub, np.subtract), "mul": (operator.mul, np.multiply),
          "div": (operator.truediv, np.divide), "maximum": (F.maximum, np.maximum)}
PAIRS = [(a, b) for a, b in itertools.product(OPERANDS, OPERANDS) if "tensor" in (a[0], b[0]) or
         "0d" in (a[0], b[0])]


def op_expected(name, a, b):
    dtype = expected_dtype([a, b])
    if name == "div" and category(dtype) < 2:
        return "float32"  # true division
    if name == "sub" and dtype == "bool":
        return None  # bool - bool is refused
    return dtype


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_promotion_table(name):
    fn, ref = BINARY[name]
    wrong = []
    with np.errstate(divide="ignore", invalid="ignore"):
        check_pairs(name, fn, ref, wrong)
    assert not wrong, f"{name}: {len(wrong)} wrong dtypes, e.g. {wrong[:5]}"


def check_pairs(name, fn, ref, wrong):
    for a, b in PAIRS:
        (x, xr), (y, yr) = value_of(*a, 3), value_of(*b, 2)
        expected = op_expected(name, a, b)
        if expected is None:
            with pytest.raises(TypeError):
                fn(x, y)
            continue
        out = fn(x, y)
        if out.dtype != np.dtype(expected):
            wrong.append((a, b, str(out.dtype), expected))
            continue
        want = ref(xr, yr).astype(expected)
        np.testing.assert_allclose(out.numpy().astype(np.float64), want.astype(np.float64), rtol=1e-3)


def test_where_promotion_table():
    cond = tg.tensor([True, False, True])
    wrong = []
    for a, b in PAIRS:
        (x, xr), (y, yr) = value_of(*a, 3), value_of(*b, 2)
        out = F.where(cond, x, y)
        expected = expected_dtype([a, b])
        if out.dtype != np.dtype(expected):
            wrong.append((a, b, str(out.dtype), expected))
            continue
        np.testing.assert_array_equal(out.numpy(), np.where([True, False, True], xr, yr).astype(expected))
    assert not wrong, f"where: {len(wrong)} wrong dtypes, e.g. {wrong[:5]}"


def test_hand_picked_promotions():
    """The examples of the rules, one by one."""
    i32 = tg.tensor(np.array([1, 2], dtype=np.int32))
    assert (i32 + tg.tensor(np.int64(5))).dtype == np.int32             # 0-d int64 does not widen int32
    assert (tg.ones(2) + tg.tensor(np.array(1.0))).dtype == np.float32  # nor float64 0-d a float32 tensor
    assert (i32 + tg.tensor(np.array(1.0))).dtype == np.float64         # but a higher category counts
    assert (tg.tensor([1, 2]) * 0.5).dtype == np.float32
    assert (tg.tensor([True]) + 1).dtype == np.int64
    assert (tg.ones(2, dtype=np.float16) + tg.tensor([1, 2])).dtype == np.float16  # NumPy: float64
    assert (tg.ones(2) * np.ones(2)).dtype == np.float64  # a NumPy array counts as a tensor of its dtype
    np.testing.assert_array_equal((tg.tensor([3, 4]) / tg.tensor([2, 8])).numpy(), np.float32([1.5, 0.5]))


@pytest.mark.parametrize("name", sorted(BINARY) + ["where"])
def test_promotion_matches_torch(name):
    torch = pytest.importorskip("torch")
    cond = torch.tensor([True, False, True])
    torch_fn = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
                "maximum": torch.maximum, "where": lambda a, b: torch.where(cond, a, b)}[name]
    fn = BINARY[name][0] if name != "where" else (lambda a, b: F.where(tg.tensor([True, False, True]), a, b))
    wrong, compared = [], 0
    with np.errstate(divide="ignore", invalid="ignore"):
        compared = compare_with_torch(torch, torch_fn, fn, wrong)
    assert compared > 300 and not wrong, f"{name}: {len(wrong)} dtypes differ from torch, e.g. {wrong[:5]}"


def compare_with_torch(torch, torch_fn, fn, wrong):
    compared = 0
    for a, b in PAIRS:
        ta, tb = torch_value(torch, *a, 3), torch_value(torch, *b, 2)
        try:
            expected = torch_fn(ta, tb)
        except (RuntimeError, TypeError):
            continue  # torch refuses it (bool - bool; maximum of a number)
        ours = fn(value_of(*a, 3)[0], value_of(*b, 2)[0])
        compared += 1
        if str(ours.dtype) != str(expected.dtype).replace("torch.", ""):
            wrong.append((a, b, str(ours.dtype), str(expected.dtype)))
        np.testing.assert_allclose(ours.numpy().astype(np.float64), expected.double().numpy(), rtol=1e-3)
    return compared


def test_result_dtype_matches_torch_result_type():
    torch = pytest.importorskip("torch")
    from tinygrad_cv.ops._util import result_dtype
    for a, b in PAIRS:
        ours = result_dtype(value_of(*a, 3)[0], value_of(*b, 2)[0])
        theirs = torch.result_type(torch_value(torch, *a, 3), torch_value(torch, *b, 2))
        assert str(ours) == str(theirs).replace("torch.", ""), (a, b)


def test_clamp_promotes_over_its_bounds():
    assert F.clamp(tg.tensor([1, 2, 3]), min=1.5).dtype == np.float32
    np.testing.assert_array_equal(F.clamp(tg.tensor([1, 2, 3]), min=1.5).numpy(), [1.5, 2, 3])
    assert F.clamp(tg.tensor([1, 2, 3]), 0, 2).dtype == np.int64
    assert F.clamp(tg.tensor([1, 2, 3]), min=tg.tensor(np.array(1.5))).dtype == np.float64


# ============================================================================ gradient dtypes and 0-d results
def test_zero_d_float64_leaf_gets_a_float64_gradient():
    x = tg.Tensor(np.array(0.1), requires_grad=True)
    x.exp().backward()
    assert x.grad.dtype == np.float64 and isinstance(x.grad.data, np.ndarray)
    assert x.grad.item() == np.exp(0.1)


def test_zero_d_leaf_used_twice_keeps_float64_precision():
    x = tg.Tensor(np.array(0.1), requires_grad=True)
    (x * x + x.exp() + x.sin()).backward()
    assert x.grad.dtype == np.float64
    assert abs(x.grad.item() - (0.2 + np.exp(0.1) + np.cos(0.1))) < 1e-15  # float32 rounding is ~1e-8


def test_op_results_are_arrays_not_numpy_scalars():
    x = tg.Tensor(np.array(2.0), requires_grad=True)
    for y in (x * 3, x + x, x.exp(), x.sum(), (x * x).sum(), F.maximum(x, x)):
        assert isinstance(y.data, np.ndarray) and y.dtype == np.float64


def test_mixed_dtype_gradients_keep_each_leafs_dtype():
    a = tg.Tensor(np.ones(3), requires_grad=True)                    # float64
    b = tg.Tensor(np.ones(3, dtype=np.float32), requires_grad=True)  # float32
    out = a * b
    assert out.dtype == np.float64
    out.sum().backward()
    assert a.grad.dtype == np.float64 and b.grad.dtype == np.float32


def test_strings_and_objects_are_refused():
    for bad in (["a", "b"], np.array([object()]), "text"):
        with pytest.raises(TypeError, match="cannot be a tensor"):
            tg.Tensor(bad)


# ============================================================================ integer and bool inputs
def test_sums_of_bool_and_integers_are_int64():
    ones = tg.ones(300, dtype=np.uint8)
    assert ones.sum().dtype == np.int64 and ones.sum().item() == 300  # uint8 arithmetic gives 44
    assert tg.tensor([True, True, False]).sum().item() == 2
    assert tg.tensor([True, True]).prod().dtype == np.int64
    assert tg.tensor(np.array([100, 100], dtype=np.uint8)).prod().item() == 10000
    assert tg.tensor(np.array([200, 100], dtype=np.uint8)).cumsum(0).tolist() == [200, 300]
    assert ones.sum(dtype=np.float32).dtype == np.float32


@pytest.mark.parametrize("fn", [F.mean, F.var, F.std, lambda x: F.softmax(x, 0), lambda x: F.log_softmax(x, 0)],
                         ids=["mean", "var", "std", "softmax", "log_softmax"])
def test_floating_only_reductions_refuse_integers(fn):
    with pytest.raises(TypeError, match="floating-point"):
        fn(tg.tensor([1, 2, 4]))


def test_floating_functions_of_integers_give_float32():
    x = tg.tensor([1, 2, 4])
    for fn, ref in ((F.exp, np.exp), (F.sqrt, np.sqrt), (F.log, np.log), (F.sigmoid, lambda v: 1 / (1 + np.exp(-v))),
                    (F.reciprocal, lambda v: 1 / v)):
        out = fn(x)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out.numpy(), ref(np.array([1.0, 2.0, 4.0])), rtol=1e-6)
    assert F.mean(x, dtype=np.float64).item() == 7 / 3
    np.testing.assert_allclose(F.softmax(x, 0, dtype=np.float64).numpy(), np.exp([1, 2, 4]) / np.exp([1, 2, 4]).sum())
    assert F.logsumexp(x, 0).dtype == np.float32


def test_integer_semantics_match_torch():
    torch = pytest.importorskip("torch")
    t = torch.tensor([1, 2, 4])
    x = tg.tensor([1, 2, 4])
    assert str((x * 0.5).dtype) == str((t * 0.5).dtype)[6:]
    assert str((x / x).dtype) == str((t / t).dtype)[6:]
    assert str(F.exp(x).dtype) == str(torch.exp(t).dtype)[6:]
    assert tg.ones(300, dtype=np.uint8).sum().item() == torch.ones(300, dtype=torch.uint8).sum().item()
    for name in ("mean", "var", "std"):
        with pytest.raises(RuntimeError):
            getattr(torch, name)(t)
    with pytest.raises(NotImplementedError):
        torch.softmax(t, 0)
    u, b = torch.tensor([3, 0, 250], dtype=torch.uint8), torch.tensor([True, False])
    for name in ("floor", "ceil", "round", "trunc", "abs", "relu", "sign", "square"):
        assert str(getattr(F, name)(tg.tensor(u.numpy())).dtype) == str(getattr(torch, name)(u).dtype)[6:], name
    for name in ("sign", "square"):
        assert str(getattr(F, name)(tg.tensor(b.numpy())).dtype) == str(getattr(torch, name)(b).dtype)[6:], name


# ============================================================================ Python protocols
def test_bool_float_int_index():
    assert bool(tg.tensor([0.5])) and not bool(tg.tensor(0.0))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(tg.ones(2))
    assert float(tg.tensor([[2.5]])) == 2.5 and int(tg.tensor([3.7])) == 3
    with pytest.raises(ValueError):
        float(tg.ones(2))
    assert [10, 20, 30][tg.tensor(1)] == 20 and operator.index(tg.tensor([2])) == 2
    with pytest.raises(TypeError, match="integer"):
        operator.index(tg.tensor(1.0))


def test_array_protocol():
    t = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    a = np.asarray(t)
    assert a.dtype == np.float32 and a.shape == (2, 2) and a.tolist() == [[1, 2], [3, 4]]
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    copied = np.array(t, copy=True)
    copied[0, 0] = 9
    assert t.numpy()[0, 0] == 1
    with pytest.raises(ValueError, match="copy=False"):
        np.asarray(t, dtype=np.float64, copy=False)
    assert np.asarray([tg.tensor(1.0), tg.tensor(2.0)]).dtype != object
    emu = tg.tensor([1.0, 2.0], device="emu")  # device arrays (as on cuda): only a copy reaches the host
    assert np.asarray(emu).tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="copy=False"):
        np.asarray(emu, copy=False)


def test_numpy_operands_defer_to_the_tensor():
    x = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    for y in (np.float64(2.0) * x, np.ones(2) + x, np.ones(2) - x):
        assert isinstance(y, tg.Tensor) and y.requires_grad
    np.testing.assert_array_equal((np.ones(2) - x).numpy(), [0, -1])


def test_iteration_contains_abs_pos():
    t = tg.tensor([[1.0, -2.0], [3.0, 4.0]], requires_grad=True)
    rows = list(t)
    assert len(rows) == 2 and rows[1].tolist() == [3, 4]
    rows[0].sum().backward()
    assert t.grad.tolist() == [[1, 1], [0, 0]]
    with pytest.raises(TypeError, match="0-d"):
        iter(tg.tensor(1.0))
    assert 3.0 in t and -2 in t and 5 not in t and tg.tensor(4.0) in t
    with pytest.raises(TypeError):
        "a" in t  # noqa: B015
    assert abs(t).tolist() == [[1, 2], [3, 4]] and (+t) is t
    with pytest.raises(TypeError):
        +tg.tensor([True])


def test_reflected_scalar_arithmetic():
    x = tg.tensor([1.0, 2.0, 4.0])
    np.testing.assert_allclose((1 - x).numpy(), [0, -1, -3])
    np.testing.assert_allclose((2 / x).numpy(), [2, 1, 0.5])
    np.testing.assert_allclose((2 ** x).numpy(), [2, 4, 16])


def test_floor_divide_and_remainder_follow_python():
    a, b = [5, -5, 7, -7], [3, 3, -2, -2]
    x, y = tg.tensor(a), tg.tensor(b)
    assert (x // y).tolist() == [p // q for p, q in zip(a, b)] and (x // y).dtype == np.int64
    assert (x % y).tolist() == [p % q for p, q in zip(a, b)]
    assert (x.float() % 3).tolist() == [p % 3 for p in a]
    assert (7 // tg.tensor([2, -2])).tolist() == [3, -4]
    xf = tg.Tensor(np.array([5.5, -5.5]), requires_grad=True)
    yf = tg.Tensor(np.array([2.0, 2.0]), requires_grad=True)
    (xf % yf).sum().backward()
    assert xf.grad.tolist() == [1, 1] and yf.grad.tolist() == [-2, 3]  # -floor(a / b)
    z = tg.Tensor(np.array([5.5]), requires_grad=True)
    (z // 2).sum().backward()
    assert z.grad.tolist() == [0]


@pytest.mark.parametrize("divide", [lambda a, b: a // b, lambda a, b: a % b], ids=["floor_divide", "remainder"])
def test_integer_division_by_zero_raises_as_python_and_pytorch(divide):
    with pytest.raises(ZeroDivisionError, match="integer division by zero"):
        divide(tg.tensor([5, 3]), tg.tensor([0, 1]))
    with pytest.raises(ZeroDivisionError):
        divide(tg.tensor([5, 3]), 0)
    assert np.isinf(divide(tg.tensor([5.0]), 0.0).item()) or np.isnan(divide(tg.tensor([5.0]), 0.0).item())


# ============================================================================ max / min overloads
def test_max_with_dim_is_a_values_indices_tuple():
    x = tg.tensor([[1.0, 3.0, 3.0, 2.0], [5.0, 4.0, 0.0, 5.0]], requires_grad=True)
    result = x.max(1)
    values, indices = result
    assert type(result).__name__ == "max" and result.values is values and result[1] is indices
    assert values.tolist() == [3, 5] and indices.tolist() == [1, 0] and indices.dtype == np.int64
    upstream = np.array([2.0, 7.0])
    values.backward(upstream)
    assert x.grad.tolist() == [[0, 2, 0, 0], [7, 0, 0, 0]]  # the first of the ties takes it all
    low = F.min(x, 0, keepdim=True)
    assert type(low).__name__ == "min" and low.values.shape == (1, 4) and low.indices.tolist() == [[0, 0, 1, 0]]


def test_max_forms():
    x = tg.tensor([1.0, 5.0, -2.0])
    assert F.max(x).shape == () and F.max(x).item() == 5 and x.min().item() == -2
    np.testing.assert_array_equal(F.max(x, tg.tensor(3.0)).numpy(), [3, 5, 3])  # the binary form
    np.testing.assert_array_equal(x.min(tg.tensor([0.0, 6.0, 0.0])).numpy(), [0, 5, -2])
    with pytest.raises(TypeError, match="int dim or a Tensor"):
        F.max(x, 1.5)
    with pytest.raises(TypeError, match="keepdim=True needs a dim"):
        F.max(x, keepdim=True)


def test_max_dim_gradient_is_the_gradcheck_of_a_gather():
    x = tg.Tensor(np.random.default_rng(0).permutation(12).reshape(3, 4) * 0.1, requires_grad=True)
    assert tg.gradcheck(lambda t: F.max(t, 0).values, [x])
    assert tg.gradcheck(lambda t: F.min(t, -1, keepdim=True)[0], [x])


def test_max_min_match_torch():
    torch = pytest.importorskip("torch")
    data = np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 4.0, 0.0, 5.0]])
    for name, dim, keepdim in itertools.product(("max", "min"), (0, 1, -1), (False, True)):
        x, t = tg.Tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
        ours, theirs = getattr(F, name)(x, dim, keepdim), getattr(torch, name)(t, dim, keepdim)
        np.testing.assert_array_equal(ours.values.numpy(), theirs.values.detach().numpy())
        np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
        upstream = np.random.default_rng(1).standard_normal(ours.values.shape)
        ours.values.backward(upstream)
        theirs.values.backward(torch.tensor(upstream))
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy())


# ============================================================================ var / std overloads
def test_var_std_overloads():
    data = np.arange(6.0).reshape(2, 3) ** 2
    x = tg.Tensor(data)
    np.testing.assert_allclose(F.std(x, True).item(), np.std(data, ddof=1))
    np.testing.assert_allclose(F.std(x, False).item(), np.std(data))
    np.testing.assert_allclose(F.var(x, 1, True, True).numpy(), np.var(data, axis=1, ddof=1, keepdims=True))
    np.testing.assert_allclose(x.var(0, False).numpy(), np.var(data, axis=0))
    np.testing.assert_allclose(x.var(dim=1, correction=0).numpy(), np.var(data, axis=1))
    np.testing.assert_allclose(x.std(1, keepdim=True, correction=2).numpy(),
                               np.std(data, axis=1, ddof=2, keepdims=True))
    with pytest.raises(TypeError, match="not both"):
        F.var(x, 0, True, correction=0)


def test_var_std_overloads_match_torch():
    torch = pytest.importorskip("torch")
    data = np.arange(6.0).reshape(2, 3) ** 2
    x, t = tg.Tensor(data), torch.tensor(data)
    for args, kwargs in (((True,), {}), ((False,), {}), ((1, True, True), {}), ((0, False), {}),
                         ((), {"dim": 1, "correction": 0}), ((1,), {"keepdim": True, "correction": 2})):
        for name in ("var", "std"):
            np.testing.assert_allclose(getattr(F, name)(x, *args, **kwargs).numpy(),
                                       getattr(torch, name)(t, *args, **kwargs).numpy())


# ============================================================================ clamp with tensor bounds
def clamp_grads_by_hand(x, lo, hi):
    """PyTorch computes min(max(x, lo), hi): m = max(x, lo) takes x where x > lo, lo where lo > x and
    half of each on a tie; the output takes m where m < hi, hi where hi < m, half of each on a tie."""
    m = np.maximum(x, lo)
    to_m = (m < hi) + 0.5 * (m == hi)
    return to_m * ((x > lo) + 0.5 * (x == lo)), to_m * ((lo > x) + 0.5 * (x == lo)), (hi < m) + 0.5 * (m == hi)


def test_clamp_with_tensor_bounds():
    # the last has lo > hi (the output is hi); the two before it are ties with lo and with hi
    x_np = np.array([-3.0, -1.0, 0.5, 2.0, 5.0, 0.0, 1.0, 1.0])
    lo_np = np.array([-2.0, -2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0])
    hi_np = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0])
    x, lo, hi = (tg.Tensor(a, requires_grad=True) for a in (x_np, lo_np, hi_np))
    out = F.clamp(x, lo, hi)
    np.testing.assert_array_equal(out.numpy(), np.minimum(np.maximum(x_np, lo_np), hi_np))
    upstream = np.arange(1.0, 9.0)
    out.backward(upstream)
    for t, share in zip((x, lo, hi), clamp_grads_by_hand(x_np, lo_np, hi_np)):
        np.testing.assert_array_equal(t.grad.numpy(), upstream * share)
    only_min = tg.Tensor(x_np, requires_grad=True)
    below = F.clamp(only_min, min=tg.Tensor(np.zeros(1)))
    np.testing.assert_array_equal(below.numpy(), np.maximum(x_np, 0))
    below.sum().backward()
    np.testing.assert_array_equal(only_min.grad.numpy(), (x_np > 0) + 0.5 * (x_np == 0))


def test_clamp_with_tensor_bounds_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x_np, lo_np, hi_np = rng.standard_normal((3, 4)), rng.standard_normal(4) - 0.5, rng.standard_normal((3, 1)) + 0.5
    x_np[0, 1], x_np[2, 3] = lo_np[1], hi_np[2, 0]  # a tie with each bound
    for kwargs in ({"min": True, "max": True}, {"min": True}, {"max": True}):
        ours = [tg.Tensor(a, requires_grad=True) for a in (x_np, lo_np, hi_np)]
        theirs = [torch.tensor(a, requires_grad=True) for a in (x_np, lo_np, hi_np)]
        pick = lambda ts: {k: ts[1] if k == "min" else ts[2] for k in kwargs}  # noqa: E731
        a, b = F.clamp(ours[0], **pick(ours)), torch.clamp(theirs[0], **pick(theirs))
        upstream = rng.standard_normal(a.shape)
        a.backward(upstream)
        b.backward(torch.tensor(upstream))
        np.testing.assert_allclose(a.numpy(), b.detach().numpy())
        for o, t in zip(ours, theirs):
            if t.grad is not None:
                np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy())


# ============================================================================ prod, cumsum, 0-d tensors
def test_prod_gradient_with_zeros():
    def grad_of_prod(values):
        x = tg.Tensor(np.array(values), requires_grad=True)
        x.prod().backward()
        return x.grad.tolist()
    assert grad_of_prod([2.0, 3.0, 4.0]) == [12, 8, 6]
    assert grad_of_prod([2.0, 0.0, 4.0]) == [0, 8, 0]  # only the zero gets the product of the others
    assert grad_of_prod([0.0, 3.0, 0.0]) == [0, 0, 0]
    x = tg.Tensor(np.array([[0.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    x.prod(1, keepdim=True).backward(np.array([[1.0], [10.0]]))
    assert x.grad.tolist() == [[2, 0], [40, 30]]
    with pytest.raises(TypeError, match="one dim"):
        x.prod((0, 1))


def test_cumsum_and_its_gradient():
    x = tg.Tensor(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), requires_grad=True)
    y = x.cumsum(1)
    assert y.tolist() == [[1, 3, 6], [4, 9, 15]]
    y.backward(np.array([[1.0, 10.0, 100.0], [1.0, 1.0, 1.0]]))
    assert x.grad.tolist() == [[111, 110, 100], [3, 2, 1]]


def test_zero_d_tensors_accept_dim_0_and_minus_1():
    s = tg.Tensor(np.array(3.0), requires_grad=True)
    for dim in (0, -1):
        assert F.sum(s, dim).item() == 3 and F.mean(s, dim, keepdim=True).shape == ()
        assert F.amax(s, dim).item() == 3 and F.argmax(s, dim).item() == 0
        assert F.softmax(s, dim).item() == 1 and F.logsumexp(s, dim).item() == 3
        values, indices = F.max(s, dim)
        assert values.item() == 3 and indices.item() == 0 and indices.dtype == np.int64
        assert s.transpose(0, dim).item() == 3 and F.cumsum(s, dim).item() == 3
    with pytest.raises(IndexError):
        F.sum(s, 1)
    F.max(s, 0).values.backward()
    assert s.grad.item() == 1


def test_any_and_all():
    x = tg.tensor([[0.0, 2.0], [0.0, 0.0]])
    assert x.any().item() is True and x.all().item() is False and x.any().dtype == bool
    assert x.any(1).tolist() == [True, False] and F.all(x != 5, 0, keepdim=True).tolist() == [[True, True]]
    assert tg.tensor(3).all(0).item() is True


def test_argmax_is_int64():
    x = tg.tensor([[1.0, 5.0], [7.0, 2.0]])
    for out in (x.argmax(), x.argmax(1), x.argmin(0, keepdim=True), x.argmin()):
        assert out.dtype == np.int64
    assert x.argmax().item() == 2 and x.argmin(0, keepdim=True).tolist() == [[0, 1]]


def test_reductions_match_torch():
    torch = pytest.importorskip("torch")
    data = np.array([[0.0, 2.0, -1.5], [3.0, 4.0, 0.5]])
    x, t = tg.Tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    for ours, theirs in ((x.prod(1), t.prod(1)), (x.prod(), t.prod()), (x.cumsum(0), t.cumsum(0)),
                         (x.sum(1, keepdim=True), t.sum(1, keepdim=True))):
        upstream = np.random.default_rng(0).standard_normal(ours.shape)
        x.grad, t.grad = None, None
        ours.backward(upstream)
        theirs.backward(torch.tensor(upstream))
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy())
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy())
    ints = np.array([3, 4, 200], dtype=np.uint8)
    assert tg.tensor(ints).prod().item() == torch.tensor(ints).prod().item()
    assert str(tg.tensor(ints).cumsum(0).dtype) == str(torch.tensor(ints).cumsum(0).dtype)[6:]


# ============================================================================ the namespace
TOP_LEVEL = """
    abs add all amax amin any argmax argmin cat ceil chunk clamp clip clone conv2d conv_transpose2d cos
    cumsum div eq exp expm1 flatten flip floor floor_divide ge gt isfinite isinf isnan le log log1p
    log_softmax logical_not logsumexp lt matmul max maximum mean min minimum mul ne neg permute
    pixel_shuffle pow prod reciprocal relu remainder reshape round rsqrt sigmoid sign sin softmax split
    sqrt square squeeze stack std sub sum tanh transpose trunc unsqueeze var where
""".split()
TENSOR_METHODS = """
    abs add all amax amin any argmax argmin bool ceil chunk clamp clip clone cos cpu cumsum detach dim div
    double eq exp expand expm1 flatten flip float floor floor_divide ge gt half int isfinite isinf isnan
    item le log log1p logical_not lt ne t
    log_softmax logsumexp long matmul max maximum mean min minimum mul neg numel numpy permute pow
    prod reciprocal relu remainder requires_grad_ reshape round rsqrt sigmoid sign sin size softmax
    split sqrt square squeeze std sub sum tanh to tolist transpose trunc type_as unsqueeze var view
    where __abs__ __array__ __bool__ __contains__ __float__ __floordiv__ __index__ __int__ __iter__
    __mod__ __pos__ __rfloordiv__ __rmod__
""".split()


def test_top_level_namespace_is_functional():
    for name in TOP_LEVEL:
        assert getattr(tg, name) is getattr(F, name), name
    for name in TENSOR_METHODS:
        assert callable(getattr(tg.Tensor, name)), name
    for name in ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"):
        assert tg.ones(2, dtype=getattr(tg, name)).dtype == np.dtype(name)


def test_namespace_names_are_pytorchs():
    torch = pytest.importorskip("torch")
    assert [n for n in TOP_LEVEL if n not in dir(torch)] == []
    assert [n for n in TENSOR_METHODS if n not in dir(torch.Tensor)] == []
    assert all(isinstance(getattr(torch, n), torch.dtype) for n in ("bool", "uint8", "int64", "float16"))


def test_alpha_scales_a_list_operand_elementwise():
    """add/sub(other=list, alpha): the list is a tensor before it is scaled ([1.] * 2 would repeat it)."""
    x = tg.tensor([10.0, 20.0])
    assert tg.sub(x, [1.0], alpha=2).tolist() == [8.0, 18.0]  # 10 - 2*1, 20 - 2*1
    assert tg.add(x, (1.0, 3.0), alpha=2).tolist() == [12.0, 26.0]
    with pytest.raises(ValueError, match="cannot be broadcast"):
        tg.add(tg.zeros(4), [1.0, 2.0], alpha=2)  # was [1, 2, 1, 2] silently


def test_new_methods_compute_what_they_say():
    x = tg.tensor([[0.25, -1.5], [4.0, 2.5]])
    np.testing.assert_allclose(x.square().numpy(), [[0.0625, 2.25], [16, 6.25]])
    np.testing.assert_allclose(x.abs().rsqrt().numpy(), [[2, 1.5 ** -0.5], [0.5, 2.5 ** -0.5]], rtol=1e-6)
    np.testing.assert_allclose(x.reciprocal().numpy(), [[4, -2 / 3], [0.25, 0.4]], rtol=1e-6)
    np.testing.assert_allclose(x.abs().log1p().numpy(), np.log(1 + np.abs(x.numpy())), rtol=1e-6)
    np.testing.assert_allclose(x.expm1().numpy(), np.exp(x.numpy()) - 1, rtol=1e-6)
    assert x.floor().tolist() == [[0, -2], [4, 2]] and x.ceil().tolist() == [[1, -1], [4, 3]]
    assert x.round().tolist() == [[0, -2], [4, 2]] and x.trunc().tolist() == [[0, -1], [4, 2]]  # half to even
    assert x.flip(0).tolist() == [[4, 2.5], [0.25, -1.5]] and x.flip(0, 1).tolist() == [[2.5, 4], [-1.5, 0.25]]
    assert x.where(x > 0, 0.0).tolist() == [[0.25, 0], [4, 2.5]]
    assert x.add(x, alpha=2).tolist() == [[0.75, -4.5], [12, 7.5]] and x.sub(1, alpha=2).tolist()[0] == [-1.75, -3.5]
    assert x.type_as(tg.tensor([1])).dtype == np.int64 and x.int().dtype == np.int32 and x.bool().dtype == bool
    assert x.dim() == 2
    assert x.t().tolist() == [[0.25, 4], [-1.5, 2.5]] and tg.tensor([1.0, 2.0]).t().tolist() == [1, 2]
    with pytest.raises(RuntimeError, match="t: expects a tensor with <= 2 dimensions"):
        tg.zeros(2, 2, 2).t()
    y = tg.tensor([1.0, np.inf, np.nan, -2.0])
    assert y.isnan().tolist() == [False, False, True, False] and y.isinf().tolist() == [False, True, False, False]
    assert y.isfinite().tolist() == [True, False, False, True]
    assert (y > 0).logical_not().tolist() == [False, False, True, True]
    assert [f(x, 0.5).tolist() for f in (F.eq, F.ne, F.lt, F.le, F.gt, F.ge)] == [
        [[a == 0.5 for a in r] for r in x.tolist()], [[a != 0.5 for a in r] for r in x.tolist()],
        [[a < 0.5 for a in r] for r in x.tolist()], [[a <= 0.5 for a in r] for r in x.tolist()],
        [[a > 0.5 for a in r] for r in x.tolist()], [[a >= 0.5 for a in r] for r in x.tolist()]]
    leaf = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    copy = leaf.clone()
    assert copy.data is not leaf.data and not np.shares_memory(copy.data, leaf.data)
    (copy * copy).sum().backward()
    assert leaf.grad.tolist() == [2, 4] and leaf.grad.dtype == np.float64


def test_integer_and_bool_dtypes_of_sign_like_ops():
    x, b = tg.tensor(np.array([3, 0, 250], dtype=np.uint8)), tg.tensor([True, False])
    for fn in (F.floor, F.ceil, F.round, F.trunc, F.abs, F.relu, F.sign):
        assert fn(x).dtype == np.uint8, fn.__name__
    assert F.floor(x).tolist() == [3, 0, 250] and F.sign(x).tolist() == [1, 0, 1]
    assert F.sign(b).tolist() == [True, False] and F.square(b).dtype == np.int64


def test_rounding_has_zero_gradient():
    x = tg.Tensor(np.array([0.3, 1.7]), requires_grad=True)
    (x.floor() + x.round() + x.ceil() + x.trunc()).sum().backward()
    assert x.grad.tolist() == [0, 0]


# ============================================================================ errors of binary ops
@pytest.mark.parametrize("fn, name", [(operator.add, "add"), (operator.mul, "mul"), (operator.sub, "sub"),
                                      (operator.truediv, "div"), (F.maximum, "maximum"), (operator.lt, "less"),
                                      (lambda a, b: F.where(a > 0, a, b), "where"),
                                      (lambda a, b: F.clamp(a, b, None), "clamp")])
def test_broadcast_errors_name_the_op_and_shapes(fn, name):
    with pytest.raises(ValueError, match=rf"^{name}: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        fn(tg.ones(2, 3), tg.ones(4))


def test_where_needs_a_bool_tensor_condition():
    with pytest.raises(TypeError, match="condition"):
        F.where([True, False], tg.ones(2), 0.0)
    with pytest.raises(TypeError, match="float32 Tensor"):
        F.where(tg.tensor([1.0, 0.0]), tg.ones(2), 0.0)


def test_where_condition_rule_matches_torch():
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="bool"):
        torch.where(torch.tensor([1.0, 0.0]), torch.ones(2), 0.0)
