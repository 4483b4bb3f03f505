"""The Learner: data, model, loss and optimiser together, with the training loop (fastai's design).

    learn = Learner(dls, model, F.cross_entropy, metrics=[accuracy])
    learn.lr_find()                  # suggestions and a figure
    learn.fit_one_cycle(5, 1e-3)     # prints one row per epoch
    learn.recorder.plot_loss()        # a Figure (fname=... also writes a PNG)

The loop itself is short; everything optional (schedules, progress, recording, mixed precision,
early stopping, checkpoints) is a callback reacting to events (see callbacks.py for the order).
``dls`` needs only ``dls.train`` and ``dls.valid``: iterables of (x, y) batches of Tensors whose
``len()`` is the number of batches; ``dls.device``, if present, is where the model goes.

A model that computes its own losses, as torchvision's detection models (``model(images, targets)`` ->
{'loss_classifier': ..., ...}), is trained with ``loss_func=None``; a loss (the model's or loss_func's)
may be a dict of scalar Tensors, which are summed for backward and each logged:

    learn = Learner(detection_dls, mask_rcnn, None, metrics=[COCOMetric(valid_json, category_ids)])
"""
import contextlib
import json
import math
import numbers
import os
import time
import warnings

import numpy as np

from .. import distributed as dist
from .. import functional as F
from ..autograd import no_grad
from ..metrics.base import as_metric, function_name
from ..nn import Module
from ..optim import Adam, lr_range
from ..optim.optimizer import check_number
from ..optim.lr_scheduler import combined_cos
from ..tensor import Tensor
from . import checkpoint
from .callbacks import Callback, CancelFitException, CancelStepException, CancelValidException, ParamScheduler
from .distributed import DataParallel
from ..data.show import show_inline
from .lr_finder import LRFinder, minimum, steep, suggestion_names, valley
from .mixed_precision import MixedPrecision, is_norm_layer
from .progress import ProgressCallback
from .recorder import Recorder


class Learner:
    """Trains ``model`` on ``dls`` with ``loss_func(pred, y)`` and an optimiser made by
    ``opt_func(param_groups, lr=lr)``. ``metrics`` are functions f(pred, y) or Metric objects, reported
    on the validation set each epoch. Checkpoints go to ``path/model_dir``, figures to ``path``.

    ``loss_func=None``: the model computes its own loss from the batch, as torchvision's detection models.
    In training ``learn.pred`` is then ``model(*x, y)``, the loss; in validation (eval mode, no gradients)
    the loss is ``model(*x, y)`` and ``learn.pred`` is ``model(*x)``, the predictions the metrics score.
    A loss may be a dict of scalar Tensors (from the model or from ``loss_func``): their sum is
    backpropagated, and each term is kept per batch (``learn.loss_values``, the recorder), averaged per
    epoch (training means as columns of the epoch table named by the key, validation means as
    ``valid_<key>`` in ``learn.epoch_values``) and shown in the progress line.

    The default optimiser differs from fastai's: ``opt_func=Adam`` is PyTorch's Adam with its defaults
    (betas (0.9, 0.999), eps 1e-8, no weight decay), where fastai's is Adam with betas (0.9, 0.99), eps 1e-5
    and wd 0.01 as true (decoupled) weight decay. For fastai's, pass
    ``opt_func=partial(AdamW, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01)``."""

    def __init__(self, dls, model, loss_func, opt_func=Adam, lr=1e-3, metrics=(), cbs=(), path=".",
                 model_dir="models", train_bn=True, progress=True):
        for split in ("train", "valid"):
            if not hasattr(dls, split):
                raise TypeError(f"Learner: dls must have .train and .valid loaders (iterables of (x, y) "
                                f"batches); {type(dls).__name__} has no .{split}")
        if not isinstance(model, Module):
            raise TypeError(f"Learner: model must be an nn.Module, got {type(model).__name__}")
        if next(model.parameters(), None) is None:
            raise ValueError(f"Learner: the model ({type(model).__name__}) has no parameters, so there is "
                             f"nothing to train; register its weights as nn.Parameter attributes (or "
                             f"sub-modules) in __init__")
        self.dls, self.model, self.loss_func, self.opt_func, self.lr = dls, model, loss_func, opt_func, lr
        self.metrics = [as_metric(m) for m in (metrics if isinstance(metrics, (list, tuple)) else [metrics])]
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"Learner: metric names {names} repeat; give each its own name "
                             f"(e.g. m = AvgMetric(partial(fbeta, thresh=0.3)); m.name = 'f2_at_0.3')")
        self.path, self.model_dir, self.train_bn = os.fspath(path), model_dir, train_bn
        self.opt, self.mixed_precision, self.cbs = None, None, []
        self.recorder = Recorder()
        parallel = [DataParallel()] if dist.world_size() > 1 else []  # mpiexec -n N: see train/distributed.py
        progress = [ProgressCallback()] if progress and dist.rank() == 0 else []
        self.add_cbs([self.recorder] + progress + parallel + list(cbs))
        if getattr(dls, "device", None) is not None:
            model.to(dls.device)
        self.epoch, self.n_epoch, self.iter, self.train_iter, self.pct_train = 0, 1, 0, 0, 0.0
        self.training, self.epoch_values, self.loss_names, self.loss_values = False, {}, [], {}

    # ------------------------------------------------------------------ callbacks
    def add_cbs(self, cbs):
        for cb in cbs:
            if not isinstance(cb, Callback):
                hint = f" (a class: pass {cb.__name__}())" if isinstance(cb, type) else ""
                raise TypeError(f"Learner: callbacks must be Callback instances, got {cb!r}{hint}")
            cb.learn = self
            self.cbs.append(cb)
        self.cbs.sort(key=lambda cb: cb.order)

    def remove_cbs(self, cbs):
        for cb in cbs:
            self.cbs.remove(cb)

    @contextlib.contextmanager
    def added_cbs(self, cbs):
        """Callbacks active only inside this block (those given to one ``fit``)."""
        self.add_cbs(cbs)
        try:
            yield
        finally:
            self.remove_cbs(cbs)

    def _event(self, name):
        for cb in self.cbs:
            getattr(cb, name)()

    def column_names(self):
        """The columns of the epoch table: with a dict of losses, the training mean of each term (known from
        the first batch on) after train_loss and valid_loss."""
        return ["epoch", "train_loss", "valid_loss", *self.loss_names, *[m.name for m in self.metrics], "time"]

    # ------------------------------------------------------------------ parameter groups and freezing
    def layer_groups(self):
        """The model's parameter groups, as lists of parameters: from ``model.layer_groups()`` when the model
        defines it (early layers first, head last), else one group with every parameter."""
        groups = self.model.layer_groups() if hasattr(self.model, "layer_groups") else [self.model]
        groups = [list(g.parameters()) if isinstance(g, Module) else list(g) for g in groups]
        grouped = {id(p) for g in groups for p in g}
        missing = [name for name, p in self.model.named_parameters() if id(p) not in grouped]
        if missing:
            raise ValueError(f"Learner: {type(self.model).__name__}.layer_groups() leaves out parameters "
                             f"{missing[:5]}{' ...' if len(missing) > 5 else ''}; every parameter must be "
                             f"in a group")
        return groups

    def create_opt(self):
        self.opt = self.opt_func([{"params": g} for g in self.layer_groups()], lr=self.lr)
        return self.opt

    def lr_range(self, lr, where="Learner"):
        """One learning rate per layer group from a number, a slice (see optim.lr_range) or a sequence of
        one rate per layer group."""
        n_groups, per_group = len(self.layer_groups()), isinstance(lr, (list, tuple, np.ndarray))
        bounds = list(np.ravel(lr)) if per_group else [lr.start, lr.stop] if isinstance(lr, slice) else [lr]
        if per_group and len(bounds) != n_groups:
            raise ValueError(f"{where}: got {len(bounds)} learning rates {lr!r} but the model has {n_groups} "
                             f"layer groups; give one per group, a number or a slice(lo, hi)")
        positive = [b is None or (isinstance(b, numbers.Real) and not isinstance(b, bool) and 0 < b < math.inf)
                    for b in bounds]
        if not all(positive) or bounds[-1] is None:
            raise ValueError(f"{where}: the learning rate must be a positive finite number, a slice(lo, hi) "
                             f"or one such number per layer group, got {lr!r}")
        return np.array(bounds, dtype=float) if per_group else lr_range(lr, n_groups)

    def freeze_to(self, n):
        """Train only the layer groups from ``n`` on (negative counts from the end); with ``train_bn``,
        batch-norm layers stay trainable everywhere (their statistics must adapt to the new data).
        ``n`` may also name a stage of a model with ``layer_group_index(name)`` (Mask R-CNN's Matterport
        stages 'heads', '3+', '4+', 'all'): the index of the first group that stage trains."""
        if isinstance(n, str):
            if not hasattr(self.model, "layer_group_index"):
                raise TypeError(f"freeze_to: {type(self.model).__name__} names no training stages (it has no "
                                f"layer_group_index method), so n must be an integer, got {n!r}")
            n = self.model.layer_group_index(n)
        groups = self.layer_groups()
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not -len(groups) <= n < len(groups):
            raise ValueError(f"freeze_to: n must be an integer in [{-len(groups)}, {len(groups) - 1}] (the "
                             f"model has {len(groups)} layer groups), got {n!r}")
        first_trained = n if n >= 0 else len(groups) + n
        for i, group in enumerate(groups):
            for p in group:
                p.requires_grad_(i >= first_trained)
        if self.train_bn:
            for module in self.model.modules():
                if is_norm_layer(module):
                    module.requires_grad_(True)

    def freeze(self):
        """Train only the last layer group (the head)."""
        self.freeze_to(-1)

    def unfreeze(self):
        self.freeze_to(0)

    # ------------------------------------------------------------------ fitting
    def fit(self, n_epoch, lr=None, wd=None, cbs=(), start_epoch=0):
        """Train for epochs ``start_epoch`` .. ``n_epoch - 1`` at a constant learning rate ``lr`` (a number, a
        slice over the layer groups or one rate per group; default ``self.lr``), validating after each epoch.
        ``wd``, when given, becomes every group's ``weight_decay`` (and stays after the fit, as fastai's
        ``set_hypers(wd=wd)``); whether it is an L2 penalty or decoupled is the optimiser's (Adam or AdamW).
        Refuses to start when no parameter requires grad."""
        for name, value in (("n_epoch", n_epoch), ("start_epoch", start_epoch)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"fit: {name} must be an int, got {value!r}")
        if n_epoch < 1 or not 0 <= start_epoch < n_epoch:
            raise ValueError(f"fit: need n_epoch >= 1 and 0 <= start_epoch < n_epoch, got n_epoch={n_epoch}, "
                             f"start_epoch={start_epoch}")
        if not any(p.requires_grad for p in self.model.parameters()):
            raise ValueError(f"fit: no parameter of {type(self.model).__name__} requires grad, so there is "
                             f"nothing to train: unfreeze some first (learn.unfreeze(), learn.freeze_to(n) or "
                             f"model.requires_grad_())")
        if self.opt is None:
            self.create_opt()
        lrs = self.lr_range(self.lr if lr is None else lr, "fit")
        if wd is not None:
            check_number(wd, "fit: wd", low=0.0)
            self.opt.set_hyper("weight_decay", wd)
        self.n_epoch, self.train_iter = int(n_epoch), 0
        with self.added_cbs(list(cbs)):
            try:
                self._event("before_fit")  # sees the optimiser as it was before this fit
                self.opt.set_hyper("lr", lrs)
                for self.epoch in range(start_epoch, self.n_epoch):
                    self._do_epoch()
            except CancelFitException:
                pass
            finally:
                self._event("after_fit")

    def fit_one_cycle(self, n_epoch, lr_max=None, div=25.0, div_final=1e5, pct_start=0.25, wd=None,
                      moms=(0.95, 0.85, 0.95), cbs=(), start_epoch=0):
        """fastai's one-cycle: over the fraction of training done, the learning rate warms up from
        lr_max/div to lr_max (cosine, first ``pct_start``), then anneals to lr_max/div_final (cosine);
        momentum goes from moms[0] to moms[1] and back to moms[2]. ``lr_max`` may be a slice
        (discriminative rates) or one rate per layer group. ``start_epoch`` resumes a run at that epoch, on
        the same schedule (see ``load``). ``wd``: the weight decay for this fit, as in ``fit``."""
        check_number(pct_start, "fit_one_cycle: pct_start", low=0.0, high=1.0)
        for name, value in (("div", div), ("div_final", div_final)):
            check_number(value, f"fit_one_cycle: {name}", low=0.0, low_open=True)
        if not isinstance(moms, (list, tuple)) or len(moms) != 3:
            raise ValueError(f"fit_one_cycle: moms must be three momenta (start, middle, end), got {moms!r}")
        for i, mom in enumerate(moms):
            check_number(mom, f"fit_one_cycle: moms[{i}]", low=0.0, high=1.0, high_open=True)
        if self.opt is None:
            self.create_opt()
        top = self.lr_range(self.lr if lr_max is None else lr_max, "fit_one_cycle")
        scheds = {"lr": combined_cos(pct_start, top / div, top, top / div_final)}
        if self.opt.momentum_key is not None:
            scheds["mom"] = combined_cos(pct_start, *moms)
        self.fit(n_epoch, lr=lr_max, wd=wd, cbs=[ParamScheduler(scheds), *cbs], start_epoch=start_epoch)

    def _do_epoch(self):
        start = time.perf_counter()
        self._event("before_epoch")
        train_loss = self._do_train()
        try:
            valid = self._validate(self.dls.valid)
        except CancelValidException:
            valid = {"valid_loss": None, **{f"valid_{k}": None for k in self.loss_names},
                     **{m.name: None for m in self.metrics}}
        self.epoch_values = {"epoch": self.epoch, **train_loss, **valid, "time": time.perf_counter() - start}
        self._event("after_epoch")

    def _do_train(self):
        """One epoch of training; returns {'train_loss': mean, term: mean for each loss term}, weighted by
        batch size (batches whose loss is not finite left out)."""
        self.model.train()
        self.training, self.dl = True, self.dls.train
        self.n_iter = len(self.dl)
        means = LossMeans()
        self._event("before_train")
        for self.iter, batch in enumerate(self.dl):
            self.pct_train = (self.epoch * self.n_iter + self.iter) / (self.n_epoch * self.n_iter)
            self._do_batch(batch)
            self.train_iter += 1
            means.add(self.loss_value, self.loss_values, len(self.yb))
        self._event("after_train")
        return means.values("train_loss", "", self.loss_names)

    def _do_batch(self, batch):
        """One batch: forward, loss and, when training, backward and an optimiser step."""
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise TypeError(f"Learner: a batch must be a tuple (x, ..., y), got {type(batch).__name__}")
        *self.xb, self.yb = batch
        self._event("before_batch")
        own_loss = self.loss_func is None and self.yb is not None
        self.pred = losses = self.model(*self.xb, self.yb) if own_loss else self.model(*self.xb)
        if own_loss and not self.training:          # validation: the losses, and the predictions to score
            self.pred = self.model(*self.xb)
        self._event("after_pred")
        if self.yb is None:
            if self.training:
                raise ValueError("Learner: a training batch has no target (y is None)")
            self.loss = None
            self._event("after_batch")
            return
        if self.loss_func is not None:
            losses = self.loss_func(self.pred, self.yb)
        elif self.training:
            losses = self.pred                      # as callbacks left it after_pred
        self.loss = self.loss_grad = self._total_loss(losses)
        self.loss_value = float(self.loss.item())
        self._event("after_loss")
        if self.training:
            self._check_loss_is_finite()
            self.loss_grad.backward()
            try:
                self._event("after_backward")
                self.opt.step()
                self._event("after_step")
            except CancelStepException:
                pass
            self.opt.zero_grad()
        self._event("after_batch")

    def _total_loss(self, loss):
        """The loss to backpropagate: the loss itself, or the sum (in float32 or wider) of a dict of loss
        terms, whose values are then kept in ``self.loss_values`` (read from the device at once)."""
        name = "Learner: the model (loss_func=None)" if self.loss_func is None else \
            f"Learner: loss_func {function_name(self.loss_func)}"
        if not isinstance(loss, dict):
            self.loss_values = {}
            return self._checked_loss(loss, name)
        if not loss or not all(isinstance(k, str) for k in loss):
            raise ValueError(f"{name} returned a dict {list(loss)!r:.80} of losses; it needs one or more loss "
                             f"terms named by strings")
        names = list(loss)
        if self.loss_names and names != self.loss_names:
            raise ValueError(f"{name} returned the loss terms {names}, but earlier batches had "
                             f"{self.loss_names}; every batch must give the same terms")
        terms = [self._checked_loss(term, f"{name}'s term {key!r}", graph=False) for key, term in loss.items()]
        wide = np.promote_types(np.float32, np.result_type(*[t.dtype for t in terms]))
        stacked = F.stack([t.reshape(()).to(dtype=wide) for t in terms])
        self.loss_names, self.loss_values = names, dict(zip(names, stacked.numpy().tolist()))
        return self._checked_loss(stacked.sum(), f"{name} (the sum of its loss terms)")

    def _checked_loss(self, loss, name, graph=True):
        """``loss`` if it is a floating scalar Tensor that (in training, with ``graph``) has a graph."""
        if not isinstance(loss, Tensor):
            raise TypeError(f"{name} returned a {type(loss).__name__} ({loss!r:.60}); it must return a scalar "
                            f"Tensor computed from the predictions with tinygrad_cv ops, so that backward "
                            f"reaches the model")
        if loss.data.size != 1 or loss.dtype.kind != "f":
            raise ValueError(f"{name} returned a Tensor of shape {loss.shape} and dtype {loss.dtype}; it must "
                             f"return one floating-point number (reduce per-sample losses, e.g. .mean() or "
                             f"reduction='mean')")
        if graph and self.training and not loss.requires_grad:
            raise ValueError(f"{name} returned a Tensor that does not depend on any trainable parameter (no "
                             f"graph to differentiate); compute it from the predictions with tinygrad_cv ops, "
                             f"not through .numpy() or .item()")
        return loss

    def _check_loss_is_finite(self):
        """In fp32 a NaN or infinite loss means training diverged: stop with where it happened. (Under mixed
        precision an overflow is expected now and then: the loss scaler skips that step instead.)"""
        if self.mixed_precision is None and not math.isfinite(self.loss_value):
            raise FloatingPointError(
                f"fit: the training loss is {self.loss_value} at epoch {self.epoch} (of {self.n_epoch}), "
                f"batch {self.iter} (of {self.n_iter}); training stopped. Lower the learning rate "
                f"(learn.lr_find() suggests one), check the data for NaN, or clip the gradients "
                f"(GradientClip)")

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, dl):
        """Run the model over ``dl`` without gradients, yielding after each batch (learn.pred, learn.yb and
        learn.loss_value are then set)."""
        self.model.eval()
        self.training, self.dl, self.n_iter = False, dl, len(dl)
        self._event("before_validate")
        with no_grad():
            for self.iter, batch in enumerate(dl):
                self._do_batch(batch)
                yield
        self._event("after_validate")

    def _validate(self, dl):
        for metric in self.metrics:
            metric.reset()
        means = LossMeans()
        for _ in self._evaluate(dl):
            means.add(self.loss_value, self.loss_values, len(self.yb))
            for metric in self.metrics:
                metric.accumulate(self.pred, self.yb)
        values = {m.name: m.value for m in self.metrics}
        for name, value in values.items():
            if isinstance(value, numbers.Real) and math.isnan(value):
                warnings.warn(f"Learner: metric {name!r} is NaN at epoch {self.epoch}; check what it returns "
                              f"on these batches (a NaN from one batch makes the epoch's average NaN), and "
                              f"note that a callback monitoring it never sees an improvement",
                              RuntimeWarning, stacklevel=2)
        return {**means.values("valid_loss", "valid_", self.loss_names), **values}

    def validate(self, dl=None):
        """{'valid_loss': ..., <metric name>: ...} over ``dl`` (default: the validation set), the loss and the
        metrics weighted by batch size; with a dict of losses also 'valid_<term>' for each term."""
        return self._validate(self.dls.valid if dl is None else dl)

    def _activation(self, act):
        return act or getattr(self.model, "predict_proba", None) or (lambda t: t)

    def get_preds(self, dl=None, act=None):
        """(predictions, targets) over ``dl`` (default: the validation set), concatenated along the batch.
        ``act`` maps model outputs to predictions; by default the model's ``predict_proba`` if it has one,
        else the outputs unchanged. Targets are None for a loader without them."""
        act = self._activation(act)
        preds, targets = [], []
        for _ in self._evaluate(self.dls.valid if dl is None else dl):
            preds.append(act(self.pred).data)
            targets.append(None if self.yb is None else self.yb.data)
        if not preds:
            raise ValueError("get_preds: the loader has no batches, so there is nothing to predict")
        xp, device = self.pred.xp, self.pred.device
        stacked = None if targets[0] is None else Tensor(xp.concatenate(targets), device=device)
        return Tensor(xp.concatenate(preds), device=device), stacked

    def predict(self, item, act=None):
        """The prediction for one input without its batch axis, through ``act`` as in ``get_preds``. The
        input is a model-ready Tensor or array, or a raw uint8 (H, W, C) image, which is normalised as the
        loaders normalise their batches (``dls.normalize``; it must already have the training size)."""
        self.model.eval()
        with no_grad():
            return self._activation(act)(self.model(self._batch_of_one(item)))[0]

    def _batch_of_one(self, item):
        if isinstance(item, Tensor):
            return item.unsqueeze(0)
        device = getattr(self.dls, "device", None) or next(self.model.parameters()).device
        array = np.asarray(item)
        normalize = getattr(self.dls, "normalize", None)
        if normalize is not None and array.dtype == np.uint8:
            return Tensor(normalize(array[None]), device=device)
        return Tensor(array[None].astype(np.float32), device=device)

    def show_results(self, max_n=9, fname=None, act=None, thresh=0.5):
        """A Figure of up to ``max_n`` validation samples with their targets and predictions (tags where the
        predicted probability exceeds ``thresh``), drawn de-normalised with the loaders' ``normalize``
        statistics; also written as the PNG ``fname`` when given."""
        from .show import show_results
        valid = self.dls.valid
        x, y = valid.one_batch() if hasattr(valid, "one_batch") else next(iter(valid))  # one_batch: no epoch
        self.model.eval()
        with no_grad():
            pred = self._activation(act)(self.model(x))
        vocab = getattr(self.dls, "vocab", None)
        normalize = getattr(self.dls, "normalize", None)
        stats = {} if normalize is None else {"mean": normalize.mean, "std": normalize.std}
        return show_results(x.numpy(), y.numpy(), pred.numpy(), fname, max_n=max_n, vocab=vocab, thresh=thresh,
                            **stats)

    # ------------------------------------------------------------------ summary
    def summary(self):
        """fastai's table of the model, computed by running one training batch forward (no gradients, in
        eval mode; the mode is restored) with a forward hook on every leaf module: each call's layer (name
        and type), output shape, parameter count and whether they are trainable; then the totals, the
        optimiser and the loss function. Returns the text (shown as it is in a notebook)."""
        train = self.dls.train
        xb = (train.one_batch() if hasattr(train, "one_batch") else next(iter(train)))[:-1]
        leaves = [(n, m) for n, m in self.model.named_modules() if next(m.children(), None) is None]
        rows, was_training = [], self.model.training
        hooks = [m.register_forward_hook(lambda mod, args, out, name=n: rows.append((name, mod, out)))
                 for n, m in leaves]
        try:
            self.model.eval()
            with no_grad():
                self.model(*xb)
        finally:
            for hook in hooks:
                hook.remove()
            self.model.train(was_training)
        table = [("Layer (type)", "Output Shape", "Param #", "Trainable")]
        for name, module, out in rows:
            params = list(module.parameters())
            table.append((f"{name or 'model'} ({type(module).__name__})", _shapes(out),
                          str(sum(p.data.size for p in params)),
                          str(any(p.requires_grad for p in params)) if params else ""))
        widths = [max(len(row[i]) for row in table) for i in range(4)]
        lines = [f"{type(self.model).__name__} (Input shape: {_shapes(xb[0])})"]
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
        total = sum(p.data.size for p in self.model.parameters())
        trainable = sum(p.data.size for p in self.model.parameters() if p.requires_grad)
        lines += [f"Total params: {total:,}", f"Total trainable params: {trainable:,}",
                  f"Total non-trainable params: {total - trainable:,}",
                  f"Optimizer used: {function_name(self.opt_func)}",
                  f"Loss function: {function_name(self.loss_func)}"]
        return PrettyString("\n".join(lines))

    # ------------------------------------------------------------------ the learning-rate finder
    def lr_find(self, start_lr=1e-7, end_lr=10.0, num_it=100, stop_div=True, show_plot=True,
                suggest_funcs=(valley, steep, minimum), fname=None):
        """Train for up to ``num_it`` batches with an exponentially growing learning rate (stopping when the
        loss diverges, unless ``stop_div=False``), restore the weights and the optimiser, and return
        SuggestedLRs: a named tuple with one rate per function of ``suggest_funcs`` (``valley``, ``steep``,
        ``minimum``, ``slide`` from train.lr_finder, or any f(lrs, losses) -> (lr, index)), as fastai v2.
        ``show_plot`` draws the smoothed loss against the rate with the suggestions marked and shows it in
        IPython; ``fname`` also writes it as a PNG. The finder (``.plot()`` redraws) stays as
        ``learn.lr_finder``. Deliberate difference: fastai's default is ``suggest_funcs=(valley,)``; ours
        also gives ``steep`` and ``minimum``, which existing callers read."""
        suggestion_names(suggest_funcs)  # checked before the sweep, not after it
        finder = LRFinder(start_lr, end_lr, num_it, stop_div)
        if len(self.dls.train) == 0:
            raise ValueError("lr_find: the training loader has no batches")
        progress = [cb for cb in self.cbs if isinstance(cb, ProgressCallback)]
        self.remove_cbs(progress)
        try:
            self.fit(num_it // len(self.dls.train) + 1, lr=start_lr,
                     cbs=[finder] + [ProgressCallback(table=False)] * bool(progress))  # bars, no table
        finally:
            self.add_cbs(progress)
        self.lr_finder = finder
        suggestions = finder.suggestions(suggest_funcs)
        if show_plot or fname is not None:
            figure = finder.plot(suggest_funcs, fname)
            if show_plot:
                show_inline(figure)
        return suggestions

    # ------------------------------------------------------------------ mixed precision
    def to_fp16(self, init_scale=2.0 ** 16, growth_interval=2000, growth_factor=2.0, backoff_factor=0.5):
        """Train with float16 forward and backward, float32 master weights and dynamic loss scaling (the
        arguments are GradScaler's, checked as its; see train.mixed_precision for what a skipped step does)."""
        mixed_precision = MixedPrecision(init_scale=init_scale, growth_interval=growth_interval,
                                         growth_factor=growth_factor, backoff_factor=backoff_factor)
        self.to_fp32()  # only once the new settings are known to be good
        self.mixed_precision = mixed_precision
        self.add_cbs([self.mixed_precision])
        return self

    def to_fp32(self):
        if self.mixed_precision is not None:
            self.remove_cbs([self.mixed_precision])
            self.mixed_precision = None
        return self

    @property
    def loss_scale(self):
        """The current dynamic loss scale under mixed precision, else None."""
        return None if self.mixed_precision is None else self.mixed_precision.scaler.scale

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_path(self, name):
        return os.path.join(self.path, self.model_dir, f"{name}.safetensors")

    def save(self, name, with_opt=True):
        """Save the model (and optimiser), the epoch, the random state, the data loaders' positions and
        any callback state (the loss scale) to ``path/model_dir/name.safetensors``, every array under its
        own name (``model/fc.weight``, ``opt/state/0/exp_avg``; see train/checkpoint.py). Training resumed
        from it with ``load`` and ``fit_one_cycle(..., start_epoch=learn.epoch + 1)`` continues exactly."""
        if with_opt and self.opt is None:
            self.create_opt()
        extra = {"loaders": loader_epochs(self.dls),
                 "callbacks": {cb.name: cb.state_dict() for cb in self.cbs if hasattr(cb, "state_dict")}}
        path = self.checkpoint_path(name)
        if dist.rank() == 0:  # data parallel: the ranks hold the same weights; one writes, all may then load
            path = checkpoint.save_checkpoint(path, self.model, self.opt if with_opt else None, epoch=self.epoch,
                                              extra=extra)
        dist.barrier()
        return path

    def load(self, name, with_opt=True, restore_rng=True):
        """Load a checkpoint written by ``save``; ``learn.epoch`` becomes the epoch it was saved after.
        All or nothing (see ``checkpoint.load_checkpoint``): a checkpoint of another model, or one whose
        optimiser is of another type than this Learner's (SGD saved, Adam here), is refused with every
        problem named and nothing changed; ``with_opt=False`` loads the model (and the rest) without the
        optimiser."""
        if with_opt and self.opt is None:
            self.create_opt()
        info = checkpoint.load_checkpoint(self.checkpoint_path(name), self.model,
                                          self.opt if with_opt else None, restore_rng=restore_rng)
        extra = info["extra"] or {}
        if restore_rng:
            set_loader_epochs(self.dls, extra.get("loaders", {}))
        for cb in self.cbs:
            if hasattr(cb, "load_state_dict") and cb.name in extra.get("callbacks", {}):
                cb.load_state_dict(extra["callbacks"][cb.name])
        self.epoch = info["epoch"] if info["epoch"] is not None else self.epoch
        return self

    # ------------------------------------------------------------------ export for inference
    def export(self, fname="export.safetensors"):
        """Write what ``load_learner`` needs to predict, to ``path/fname``, without pickle (deliberately
        unlike fastai's export.pkl, since code in a pickle runs when it is loaded): the model's state dict
        as safetensors (``tinygrad_cv.io``), and in its header a JSON of the model's class name, the
        loaders' ``vocab`` and ``normalize`` statistics and the names of the loss and optimiser functions.
        The model's code is not stored: ``load_learner`` is given a model of the same architecture.
        Returns the path."""
        from ..io import save_safetensors
        normalize = getattr(self.dls, "normalize", None)
        vocab = getattr(self.dls, "vocab", None)
        info = {"format": EXPORT_FORMAT, "model": _class_name(self.model),
                "vocab": None if vocab is None else list(vocab),
                "normalize": None if normalize is None else {"mean": np.ravel(normalize.mean).tolist(),
                                                             "std": np.ravel(normalize.std).tolist()},
                "loss_func": function_name(self.loss_func), "opt_func": function_name(self.opt_func)}
        try:
            header = json.dumps(info)
        except TypeError as error:
            raise TypeError(f"export: the loaders' vocab must be JSON values (strings or numbers), got "
                            f"{vocab!r:.80} ({error})") from None
        path = os.path.join(self.path, os.fspath(fname))
        if dist.rank() == 0:
            save_safetensors(self.model.state_dict(), path, metadata={EXPORT_FORMAT: header})
        dist.barrier()
        return path

    # ------------------------------------------------------------------ transfer learning
    def fine_tune(self, epochs, base_lr=2e-3, freeze_epochs=1, lr_mult=100, pct_start=0.3, div=5.0, **kwargs):
        """fastai's recipe for a pretrained body with a new head. First, with the body frozen (``freeze``:
        only the last layer group, and batch norm when ``train_bn``), ``fit_one_cycle(freeze_epochs,
        slice(base_lr), pct_start=0.99)``: the head learns at ``base_lr``. Then ``base_lr`` is halved,
        everything is unfrozen, and ``fit_one_cycle(epochs, slice(base_lr / lr_mult, base_lr),
        pct_start=pct_start, div=div)``: discriminative rates from (the halved) base_lr / lr_mult for the
        first group to base_lr for the head, geometrically spaced. ``kwargs`` (div_final, moms, cbs) go to both phases,
        as in fastai; ``freeze_epochs=0`` skips the first phase."""
        if int(freeze_epochs) != freeze_epochs or freeze_epochs < 0:
            raise ValueError(f"fine_tune: freeze_epochs must be an int >= 0, got {freeze_epochs!r}")
        if freeze_epochs:
            self.freeze()
            self.fit_one_cycle(freeze_epochs, slice(base_lr), pct_start=0.99, **kwargs)
        base_lr /= 2
        self.unfreeze()
        self.fit_one_cycle(epochs, slice(base_lr / lr_mult, base_lr), pct_start=pct_start, div=div, **kwargs)


class LossMeans:
    """Batch-size-weighted means over an epoch of the loss and of each loss term; batches whose loss is
    not finite (a skipped fp16 step) are left out."""

    def __init__(self):
        self.total, self.terms, self.count = 0.0, {}, 0

    def add(self, loss, terms, n):
        if math.isfinite(loss):
            self.total, self.count = self.total + loss * n, self.count + n
            for key, value in terms.items():
                self.terms[key] = self.terms.get(key, 0.0) + value * n

    def values(self, loss_name, prefix, names):
        """{loss_name: mean, prefix + term: mean, ...}; None where no batch counted."""
        mean = (lambda total: total / self.count) if self.count else (lambda total: None)
        return {loss_name: mean(self.total), **{prefix + k: mean(self.terms.get(k, 0.0)) for k in names}}


EXPORT_FORMAT = "tinygrad_cv.export.v1"


class ExportedData:
    """The loaders' part of an exported Learner: no batches, only what ``predict`` reads."""

    def __init__(self, vocab, normalize, device):
        self.train, self.valid, self.vocab, self.normalize, self.device = [], [], vocab, normalize, device


def load_learner(fname, model, loss_func=None, cpu=True):
    """A Learner for inference from a file written by ``Learner.export``. ``model`` is an nn.Module of the
    exported architecture (built by the caller, e.g. ``resnet34(num_classes=10)``; deliberately unlike
    fastai, whose pickle rebuilds it): its class must be the exported one, and the weights are loaded all or
    nothing (every missing, unexpected or misshapen name is refused in one message). ``loss_func`` is not
    stored (only its name), so pass it to use ``validate``. On the CPU with ``cpu``, else on the model's
    device. ``predict`` normalises raw images with the exported statistics; ``dls.vocab`` is restored."""
    from ..data.transforms import Normalize
    from ..io import read_safetensors
    if not isinstance(model, Module):
        raise TypeError(f"load_learner: model must be an nn.Module of the exported architecture (pickle-free "
                        f"export stores no code), got {type(model).__name__}")
    arrays, metadata = read_safetensors(fname)
    if EXPORT_FORMAT not in metadata:
        raise ValueError(f"load_learner: {os.fspath(fname)!r} is a safetensors file but not one written by "
                         f"Learner.export (no {EXPORT_FORMAT!r} header entry); for a checkpoint use learn.load")
    info = json.loads(metadata[EXPORT_FORMAT])
    if info["model"] != _class_name(model):
        raise ValueError(f"load_learner: {os.fspath(fname)!r} holds a {info['model']} but the model given is a "
                         f"{_class_name(model)}; build the exported architecture")
    model.load_state_dict(arrays)
    stats = info["normalize"]
    normalize = None if stats is None else Normalize(stats["mean"], stats["std"])
    device = "cpu" if cpu else next(model.parameters()).device
    return Learner(ExportedData(info["vocab"], normalize, device), model, loss_func, progress=False)


def _class_name(model):
    return f"{type(model).__module__}.{type(model).__qualname__}"


class PrettyString(str):
    """A str whose repr is itself, so that a notebook shows the text, not its quoted escapes."""

    def __repr__(self):
        return str(self)


def _shapes(out):
    """'20 x 16' for a Tensor (or array); the shapes of a tuple, list or dict's values, comma separated."""
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        return ", ".join(_shapes(o) for o in out)
    return " x ".join(map(str, out.shape)) if hasattr(out, "shape") else type(out).__name__


def _epoch_counters(dls):
    """{split: loader} for the loaders that count epochs (``epoch`` and ``set_epoch``, e.g. data.DataLoader,
    possibly wrapped as ``.loader`` by a device loader): their shuffles depend on that count."""
    found = {}
    for split in ("train", "valid"):
        loader = getattr(dls, split, None)
        loader = getattr(loader, "loader", loader)
        if hasattr(loader, "set_epoch") and hasattr(loader, "epoch"):
            found[split] = loader
    return found


def loader_epochs(dls):
    return {split: int(loader.epoch) for split, loader in _epoch_counters(dls).items()}


def set_loader_epochs(dls, epochs):
    for split, loader in _epoch_counters(dls).items():
        if split in epochs:
            loader.set_epoch(epochs[split])
