"""Module bookkeeping as PyTorch's: what assignment registers and refuses, buffers, container indexing, and
load_state_dict copying (never keeping the caller's arrays) all or nothing."""
from collections import OrderedDict

import numpy as np
import pytest
from error_types import raised

import tinygrad_cv as tg
from tinygrad_cv import nn


def linear(seed=0):
    tg.manual_seed(seed)
    return nn.Linear(3, 2)


# ----------------------------------------------------------------------------- assignment
def test_a_plain_tensor_over_a_parameter_is_refused_and_the_parameter_kept():
    layer = linear()
    weight = layer.weight
    with pytest.raises(TypeError, match=r"cannot assign 'Tensor' as parameter 'weight' \(nn.Parameter or None"):
        layer.weight = tg.randn(2, 3)
    assert layer.weight is weight
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert list(layer.state_dict()) == ["weight", "bias"]


def test_a_module_over_a_parameter_and_a_non_module_over_a_submodule_are_refused():
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(TypeError, match=r"cannot assign 'Linear' as parameter 'weight'"):
        model[0].weight = nn.Linear(1, 1)
    with pytest.raises(TypeError, match=r"cannot assign 'Tensor' as child module '0' \(nn.Module or None"):
        setattr(model, "0", tg.randn(2))
    assert isinstance(model[0], nn.Linear) and len(list(model.parameters())) == 2


def test_none_over_a_parameter_keeps_the_name_registered_and_a_parameter_can_come_back():
    layer = linear()
    layer.bias = None
    assert "bias" in layer._parameters and layer.bias is None
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    assert list(layer.state_dict()) == ["weight"]
    with pytest.raises(TypeError, match="as parameter 'bias'"):
        layer.bias = tg.zeros(2)
    layer.bias = nn.Parameter(tg.zeros(2))
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]


def test_a_parameter_replaces_a_parameter_and_a_module_replaces_a_module():
    model = nn.Sequential(nn.Linear(3, 2))
    new = nn.Parameter(tg.ones(2, 3))
    model[0].weight = new
    assert dict(model.named_parameters())["0.weight"] is new
    setattr(model, "0", nn.Linear(3, 4))
    assert dict(model.named_parameters())["0.weight"].shape == (4, 3)


# ----------------------------------------------------------------------------- buffers
def test_register_buffer_takes_a_tensor_or_none_and_refuses_an_array():
    module = nn.Module()
    with pytest.raises(TypeError, match=r"cannot assign 'numpy.ndarray' object to buffer 'x' \(Tensor or None"):
        module.register_buffer("x", np.zeros(2))
    assert list(module.state_dict()) == []
    module.register_buffer("x", None)
    assert list(module.state_dict()) == []
    module.x = tg.tensor(np.arange(3.0))
    assert list(module.state_dict()) == ["x"]
    np.testing.assert_array_equal(module.state_dict()["x"], [0.0, 1.0, 2.0])
    with pytest.raises(TypeError, match=r"cannot assign 'numpy.ndarray' as buffer 'x'"):
        module.x = np.zeros(3)


def test_register_buffer_refuses_bad_names_and_existing_attributes():
    module = nn.Module()
    module.scale = 2.0
    with pytest.raises(KeyError, match="a.b"):
        module.register_buffer("a.b", tg.zeros(1))
    with pytest.raises(KeyError, match="'scale' already exists"):
        module.register_buffer("scale", tg.zeros(1))


# ----------------------------------------------------------------------------- containers
def test_sequential_indexing_as_pytorch():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(IndexError, match=r"index 10 is out of range for a container of length 3"):
        model[10]
    with pytest.raises(IndexError, match=r"index -4"):
        model[-4]
    assert model[-1] is model[2] and model[-3] is model[0]
    tail = model[1:]
    assert isinstance(tail, nn.Sequential) and len(tail) == 2
    assert list(tail.state_dict()) == ["2.weight", "2.bias"]  # PyTorch keeps the names
    with pytest.raises(TypeError, match="indices must be integers or slices, got str"):
        model["0"]


def test_module_list_indexing_and_containers_refuse_non_modules():
    layers = nn.ModuleList([nn.Linear(1, 1), nn.Linear(1, 1)])
    with pytest.raises(IndexError, match="index 2 is out of range"):
        layers[2]
    assert isinstance(layers[:1], nn.ModuleList) and layers[:1][0] is layers[0]
    with pytest.raises(TypeError, match="entry 1 is a function, not an nn.Module"):
        nn.Sequential(nn.ReLU(), lambda x: x)
    with pytest.raises(TypeError, match="not an nn.Module"):
        layers.append(np.zeros(1))
    with pytest.raises(TypeError, match="entry 'act' is a int"):
        nn.Sequential(OrderedDict(act=3))


def test_train_mode_must_be_a_bool_and_freeze_a_regular_expression():
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ValueError, match=r"Sequential.train: training mode is expected to be boolean, got 'eval'"):
        model.train("eval")
    assert model.training is True
    with pytest.raises(ValueError, match=r"freeze: pattern must be a regular expression .*got '\[weight'"):
        model.freeze("[weight")
    assert all(p.requires_grad for p in model.parameters())


# ----------------------------------------------------------------------------- load_state_dict
def test_load_state_dict_copies_so_the_dict_and_other_models_stay_unchanged():
    initial = linear(1).state_dict()
    kept = {k: v.copy() for k, v in initial.items()}
    a, b = linear(2), linear(3)
    a.load_state_dict(initial)
    b.load_state_dict(initial)
    a.weight.data -= 0.5  # what an optimiser step does: in place
    np.testing.assert_array_equal(initial["weight"], kept["weight"])
    np.testing.assert_array_equal(b.weight.numpy(), kept["weight"])
    np.testing.assert_allclose(a.weight.numpy(), kept["weight"] - 0.5)


def test_load_state_dict_keeps_the_models_dtype_and_writes_in_place():
    layer = linear()
    weight_array = layer.weight.data
    state = {k: v.astype(np.float64) + 1 for k, v in layer.state_dict().items()}
    layer.load_state_dict(state)
    assert layer.weight.data is weight_array and layer.weight.dtype == np.float32
    np.testing.assert_allclose(layer.weight.numpy(), state["weight"].astype(np.float32))


def test_load_state_dict_accepts_tensors_and_copies_them():
    source, target = linear(1), linear(2)
    state = OrderedDict(source.named_parameters())
    target.load_state_dict(state)
    target.weight.data += 1
    np.testing.assert_allclose(target.weight.numpy(), source.weight.numpy() + 1)


def test_load_state_dict_needs_a_dict_and_to_a_floating_dtype():
    layer = linear()
    with pytest.raises(TypeError, match=r"state must be a dict of name -> array .*got list"):
        layer.load_state_dict([("weight", np.zeros((2, 3)))])
    with pytest.raises(TypeError, match=r"Linear.to: only floating-point dtypes are accepted, got int64"):
        layer.to(dtype=np.int64)
    assert layer.weight.dtype == np.float32
    layer.to(dtype=np.float64)
    assert layer.weight.dtype == np.float64


def test_load_state_dict_is_all_or_nothing():
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    state = {k: v + 1 for k, v in before.items()}
    state["1.weight"] = np.zeros((5, 5), np.float32)  # the last key is wrong: nothing may be written
    with pytest.raises(ValueError, match=r"1.weight: checkpoint \(5, 5\) vs model \(2, 2\)"):
        model.load_state_dict(state)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    state["1.weight"] = np.array([["a", "b"], ["c", "d"]])
    with pytest.raises(ValueError, match=r"not numeric arrays: 1.weight"):
        model.load_state_dict(state)
    np.testing.assert_array_equal(model.state_dict()["0.weight"], before["0.weight"])


# ----------------------------------------------------------------------------- init: bad input
@pytest.mark.parametrize("fill,error,message", [
    (lambda: nn.init.normal_(tg.zeros(3), std=-1.0), ValueError, r"normal_: std must be >= 0, got -1.0"),
    (lambda: nn.init.normal_(tg.zeros(3), mean=float("nan")), ValueError, r"normal_: mean must be a finite"),
    (lambda: nn.init.uniform_(tg.zeros(3), 1.0, 0.0), ValueError, r"uniform_: needs a <= b .*a=1.0 > b=0.0"),
    (lambda: nn.init.uniform_(tg.zeros(3, dtype=np.int64)), TypeError, r"uniform_: needs a floating-point"),
    (lambda: nn.init.kaiming_normal_(tg.zeros((2, 2), dtype=np.int32)), TypeError, "kaiming_normal_: needs a"),
    (lambda: nn.init.zeros_(np.ones(3)), TypeError, r"constant_: expected a Tensor .*got ndarray"),
])
def test_initialisers_refuse_what_pytorchs_refuse(fill, error, message):
    with pytest.raises(error, match=message):
        fill()


@pytest.mark.parametrize("fill", [nn.init.kaiming_uniform_, nn.init.kaiming_normal_, nn.init.xavier_uniform_,
                                  nn.init.xavier_normal_])
def test_initialising_a_tensor_without_elements_is_a_no_op_with_a_warning(fill):
    empty = tg.zeros(4, 0)  # fan_in 0: kaiming (and xavier on (0, 0)) used to divide by zero
    with pytest.warns(UserWarning, match="zero-element tensors is a no-op"):
        assert fill(empty) is empty
    with pytest.warns(UserWarning, match="zero-element tensors is a no-op"):
        fill(tg.zeros(0, 0))
    assert empty.shape == (4, 0)


def test_integer_buffers_can_still_be_zeroed():
    counter = tg.tensor(np.array(5, dtype=np.int64))
    nn.init.zeros_(counter)
    assert counter.item() == 0 and counter.dtype == np.int64


def test_assignment_and_indexing_errors_are_pytorchs():
    torch = pytest.importorskip("torch")

    cases = {
        "tensor over parameter": (lambda m: setattr(m[0], "weight", tg.randn(2, 3)),
                                  lambda m: setattr(m[0], "weight", torch.randn(2, 3))),
        "module over parameter": (lambda m: setattr(m[0], "weight", nn.ReLU()),
                                  lambda m: setattr(m[0], "weight", torch.nn.ReLU())),
        "tensor over module": (lambda m: setattr(m, "0", tg.randn(2)), lambda m: setattr(m, "0", torch.randn(2))),
        "none over parameter": (lambda m: setattr(m[0], "bias", None), lambda m: setattr(m[0], "bias", None)),
        "index out of range": (lambda m: m[5], lambda m: m[5]),
        "array as buffer": (lambda m: m.register_buffer("x", np.zeros(2)),
                            lambda m: m.register_buffer("x", np.zeros(2))),
    }
    for name, (ours, theirs) in cases.items():
        mine = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
        peer = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
        assert raised(lambda: ours(mine)) is raised(lambda: theirs(peer)), name
    mine = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    peer = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    assert list(mine[1:].state_dict()) == list(peer[1:].state_dict())
