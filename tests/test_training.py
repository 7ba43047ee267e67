import json
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from npf import training
from npf.loss import gaussian_nll
from npf.predict import predict
from npf.predictors import ConvCNP
from npf.scoring import score_images, summarise_scores
from npf.training import TrainConfig, Trainer, build_model, load_model

#: quick and exact settings for tests; the compiled bf16 default has tests of its own
EAGER = {"compile": False, "precision": "fp32"}
SMALL = {"hidden_channels": 16, "n_blocks": 2, "kernel_size": 5}


def test_short_fit_beats_constant_mean(tiny_gp, tmp_path) -> None:
    model = build_model(1, seed=0, **SMALL)
    config = TrainConfig(**EAGER, epochs=6, batch_size=16, optimizer="adam", lr=3e-3, device="cpu")
    history = Trainer(model, tiny_gp, config, tmp_path).fit(progress=False)
    assert history.epochs[-1]["val_loss"] < history.epochs[0]["val_loss"]
    trained = ConvCNP.load(tmp_path / "best.pt")
    results = summarise_scores(score_images(predict([trained], tiny_gp.test, progress=False)))
    # The constant-mean predictor of a zero-mean unit-variance field has RMSE ~ 1
    # and, as N(0, var), an NLL per pixel of 0.5 log(2 pi e var) ~ 1.42.
    truth = tiny_gp.test.values.numpy()
    constant_rmse = float(np.sqrt(np.mean(truth**2)))
    assert results["convcnp"]["rmse"]["mean"] < 0.8 * constant_rmse
    constant_nll = 0.5 * np.log(2 * np.pi * np.e * np.mean(truth**2))
    assert results["convcnp"]["nll"]["mean"] < constant_nll - 0.1


def test_resumed_run_ends_with_same_weights(tiny_gp, tmp_path) -> None:
    config = TrainConfig(
        **EAGER, epochs=3, batch_size=32, optimizer="sgd", momentum=0.9, device="cpu"
    )
    straight = build_model(1, seed=1, **SMALL)
    Trainer(straight, tiny_gp, config, tmp_path / "straight").fit(progress=False)

    interrupted = build_model(1, seed=1, **SMALL)
    Trainer(interrupted, tiny_gp, config, tmp_path / "split").fit(progress=False, time_limit_s=0)
    checkpoint = torch.load(tmp_path / "split" / "last.pt", weights_only=False)
    assert (checkpoint["epoch"], checkpoint["in_epoch"]["step"]) == (0, 1)  # stopped mid-epoch
    partial = json.loads((tmp_path / "split" / "history.json").read_text())
    assert not partial["epochs"] and [s["step"] for s in partial["steps"]] == [1]
    resumed = build_model(1, seed=99, **SMALL)  # fresh weights: all state comes from last.pt
    final = Trainer(resumed, tiny_gp, config, tmp_path / "split").fit(progress=False)
    assert [e["epoch"] for e in final.epochs] == [1, 2, 3]
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def _signal_during_step(trainer: Trainer, monkeypatch, step: int, *signals: int) -> None:
    """Make ``trainer`` send itself ``signals`` while it draws the batch of ``step`` (0-based).

    Each goes to the main thread, which gets time to handle it before the next: two of the
    same signal pending at once are handled as one."""
    draw = trainer._batch

    def draw_then_signal(state):
        if state.step == step:
            for number in signals:
                signal.pthread_kill(threading.main_thread().ident, number)
                time.sleep(0.05)
        return draw(state)

    monkeypatch.setattr(trainer, "_batch", draw_then_signal)


def test_sigterm_stops_after_the_step_and_the_run_resumes_exactly(
    tiny_gp, tmp_path, monkeypatch
) -> None:
    config = TrainConfig(**EAGER, epochs=2, batch_size=48, optimizer="adam", device="cpu")
    straight = build_model(1, seed=3, **SMALL)
    Trainer(straight, tiny_gp, config, tmp_path / "straight").fit(progress=False)

    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    stopped = Trainer(build_model(1, seed=3, **SMALL), tiny_gp, config, tmp_path / "stopped")
    _signal_during_step(stopped, monkeypatch, 1, signal.SIGTERM)
    assert not stopped.fit(progress=False).epochs  # returned: the process lives on
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers
    checkpoint = torch.load(tmp_path / "stopped" / "last.pt", weights_only=False)
    assert (checkpoint["epoch"], checkpoint["in_epoch"]["step"]) == (0, 2)  # step 2 finished

    resumed = build_model(1, seed=99, **SMALL)
    final = Trainer(resumed, tiny_gp, config, tmp_path / "stopped").fit(progress=False)
    assert [e["epoch"] for e in final.epochs] == [1, 2]
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_second_ctrl_c_interrupts_at_once(tiny_gp, tmp_path, monkeypatch) -> None:
    config = TrainConfig(**EAGER, epochs=1, batch_size=48, optimizer="adam", device="cpu")
    trainer = Trainer(build_model(1, seed=3, **SMALL), tiny_gp, config, tmp_path)
    _signal_during_step(trainer, monkeypatch, 1, signal.SIGINT, signal.SIGINT)
    # Python's own Ctrl-C handler to start from, whatever earlier tests or libraries set
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.fit(progress=False)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_run_killed_at_every_step_ends_like_an_uninterrupted_one(
    tiny_gp, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(training, "LOG_EVERY_STEPS", 2)
    monkeypatch.setattr(training, "LOG_FIRST_STEPS", 1)
    config = TrainConfig(**EAGER, epochs=2, batch_size=48, optimizer="adam", device="cpu")
    straight = build_model(1, seed=2, **SMALL)
    expected = Trainer(straight, tiny_gp, config, tmp_path / "straight").fit(progress=False)
    n_steps = 2 * 3  # 144 training fields in batches of 48
    for _ in range(n_steps):
        model = build_model(1, seed=2, **SMALL)
        history = Trainer(model, tiny_gp, config, tmp_path / "sliced").fit(
            progress=False, time_limit_s=0
        )
    assert len(history.epochs) == 2
    assert history.epochs[-1]["val_loss"] == expected.epochs[-1]["val_loss"]
    # the step log (the run's first step, then step 2 of each epoch) survives the kills,
    # each step once
    assert [(s["epoch"], s["step"]) for s in history.steps] == [(1, 1), (1, 2), (2, 2)]
    assert history.steps == expected.steps and all(s["grad_norm"] > 0 for s in history.steps)
    for a, b in zip(straight.state_dict().values(), model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_mid_epoch_checkpoints_are_written_on_schedule(tiny_gp, tmp_path) -> None:
    config = TrainConfig(**EAGER, epochs=1, batch_size=16, device="cpu", checkpoint_every_s=1e-9)
    trainer = Trainer(build_model(1, **SMALL), tiny_gp, config, tmp_path)
    saved_steps = []
    save = training._save_atomic

    def spy(obj, path):
        saved_steps.append((obj["in_epoch"] or {}).get("step"))
        save(obj, path)

    training._save_atomic = spy
    try:
        trainer.fit(progress=False)
    finally:
        training._save_atomic = save
    # 144 fields / 16 = 9 steps: a mid-epoch last.pt after steps 1-8, then best and last
    assert saved_steps == [1, 2, 3, 4, 5, 6, 7, 8, None, None]


def test_resume_refuses_other_settings(tiny_gp, tmp_path) -> None:
    config = TrainConfig(**EAGER, epochs=1, batch_size=64, device="cpu")
    Trainer(build_model(1, **SMALL), tiny_gp, config, tmp_path).fit(progress=False)
    other = TrainConfig(**EAGER, epochs=1, batch_size=64, lr=0.1, device="cpu")
    with pytest.raises(ValueError, match="cannot resume"):
        Trainer(build_model(1, **SMALL), tiny_gp, other, tmp_path).fit(progress=False)


def test_best_checkpoint_is_lowest_validation_epoch(tiny_gp, tmp_path) -> None:
    config = TrainConfig(**EAGER, epochs=2, batch_size=64, optimizer="adam", device="cpu")
    history = Trainer(build_model(1, **SMALL), tiny_gp, config, tmp_path).fit(progress=False)
    _, scaling, checkpoint = load_model(tmp_path / "best.pt")
    assert checkpoint["epoch"] == history.best_epoch
    assert checkpoint["model_config"]["hidden_channels"] == 16
    assert scaling == tiny_gp.train.scaling


@pytest.mark.parametrize(
    ("field", "value"), [("optimizer", "rmsprop"), ("precision", "fp8"), ("lr_decay", 0.0)]
)
def test_config_rejects_unknown_values(field: str, value) -> None:
    with pytest.raises(ValueError):
        TrainConfig(**{field: value})


def test_divergence_stops_with_a_clear_error_and_logs_its_steps(
    tiny_gp, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(training, "LOG_EVERY_STEPS", 1)
    config = TrainConfig(**EAGER, epochs=1, batch_size=16, lr=1e6, device="cpu")
    with pytest.raises(FloatingPointError, match="diverged in epoch 1"):
        Trainer(build_model(1, **SMALL), tiny_gp, config, tmp_path).fit(progress=False)
    steps = json.loads((tmp_path / "history.json").read_text())["steps"]
    assert steps[0]["step"] == 1 and steps[-1]["loss"] is None  # non-finite: null in JSON
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))


def test_resume_refuses_another_data_set_or_model(tiny_gp, tmp_path) -> None:
    config = TrainConfig(**EAGER, epochs=1, batch_size=64, device="cpu")
    Trainer(build_model(1, **SMALL), tiny_gp, config, tmp_path, {"max_train": None}).fit(
        progress=False
    )
    wider = build_model(1, **(SMALL | {"hidden_channels": 32}))
    with pytest.raises(ValueError, match="model_config.hidden_channels=16"):
        Trainer(wider, tiny_gp, config, tmp_path, {"max_train": None}).fit(progress=False)
    with pytest.raises(ValueError, match="data_settings.max_train=None"):
        Trainer(build_model(1, **SMALL), tiny_gp, config, tmp_path, {"max_train": 64}).fit(
            progress=False
        )


def test_fine_tuning_starts_from_another_runs_weights(tiny_gp, tmp_path) -> None:
    config = TrainConfig(**EAGER, epochs=1, batch_size=64, device="cpu")
    Trainer(build_model(1, seed=3, **SMALL), tiny_gp, config, tmp_path / "base").fit(progress=False)
    base, _, _ = load_model(tmp_path / "base" / "best.pt")
    tuned_config = replace(
        config, init_checkpoint=str(tmp_path / "base" / "best.pt"), hole_tasks=0.5, lr=0.0
    )
    tuned = build_model(1, seed=4, **SMALL)  # other weights: they come from init_checkpoint
    Trainer(tuned, tiny_gp, tuned_config, tmp_path / "tuned").fit(progress=False)
    # lr 0: the parameters stay those of the base run (batch-norm statistics move)
    for a, b in zip(base.parameters(), tuned.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    wider = build_model(1, **(SMALL | {"hidden_channels": 32}))
    with pytest.raises(ValueError, match="init_checkpoint .* has model_config"):
        Trainer(wider, tiny_gp, tuned_config, tmp_path / "wider").fit(progress=False)
    missing = replace(tuned_config, init_checkpoint=str(tmp_path / "none.pt"))
    with pytest.raises(FileNotFoundError, match="init_checkpoint"):
        Trainer(build_model(1, **SMALL), tiny_gp, missing, tmp_path / "missing").fit(progress=False)


def test_fine_tuning_widens_a_model_to_the_raw_context(tiny_gp, tmp_path) -> None:
    config = TrainConfig(**EAGER, epochs=1, batch_size=64, device="cpu")
    Trainer(build_model(1, seed=3, **SMALL), tiny_gp, config, tmp_path / "base").fit(progress=False)
    base, _, _ = load_model(tmp_path / "base" / "best.pt")
    raw = build_model(1, seed=4, **SMALL, raw_context=True)
    tuned_config = replace(config, init_checkpoint=str(tmp_path / "base" / "best.pt"), lr=0.0)
    trainer = Trainer(raw, tiny_gp, tuned_config, tmp_path / "raw")
    trainer._warm_start(tmp_path / "base" / "best.pt")
    # the widened model predicts what the base model predicts: its new inputs weigh nothing
    values = tiny_gp.test.values[:4]
    context = torch.rand(values.shape, generator=torch.Generator().manual_seed(0)) < 0.3
    for a, b in zip(base(values, context), raw.eval()(values, context), strict=True):
        torch.testing.assert_close(a, b)
    # ... and fits on from there; its checkpoint reloads as a raw-context model
    Trainer(
        build_model(1, seed=4, **SMALL, raw_context=True), tiny_gp, tuned_config, tmp_path / "fit"
    ).fit(progress=False)
    reloaded, _, _ = load_model(tmp_path / "fit" / "best.pt")
    assert reloaded.config["raw_context"]
    # the other way round would drop weights: refused
    narrow_config = replace(config, init_checkpoint=str(tmp_path / "fit" / "best.pt"))
    with pytest.raises(ValueError, match="init_checkpoint .* has model_config"):
        Trainer(build_model(1, **SMALL), tiny_gp, narrow_config, tmp_path / "narrow").fit(
            progress=False
        )


def test_a_relative_init_checkpoint_is_found_from_the_repository_and_kept_relative(
    tiny_gp, tmp_path, monkeypatch
) -> None:
    config = TrainConfig(**EAGER, epochs=1, batch_size=64, device="cpu")
    Trainer(build_model(1, seed=3, **SMALL), tiny_gp, config, tmp_path / "base").fit(progress=False)
    monkeypatch.setattr("npf.training.REPO_ROOT", tmp_path)
    monkeypatch.chdir(tmp_path / "base")  # where "base/best.pt" does not resolve
    tuned_config = replace(config, init_checkpoint="base/best.pt")
    Trainer(build_model(1, seed=4, **SMALL), tiny_gp, tuned_config, tmp_path / "tuned").fit(
        progress=False
    )
    saved = torch.load(tmp_path / "tuned" / "best.pt", weights_only=False)
    assert saved["train_config"]["init_checkpoint"] == "base/best.pt"  # no machine's path


def test_checkpoints_from_before_a_new_setting_still_resume(tiny_gp, tmp_path) -> None:
    config = TrainConfig(**EAGER, epochs=2, batch_size=64, device="cpu")
    Trainer(build_model(1, **SMALL), tiny_gp, config, tmp_path).fit(progress=False, time_limit_s=0)
    last = tmp_path / "last.pt"
    saved = torch.load(last, weights_only=False)
    del saved["identity"]["train_config"]["hole_tasks"]  # as written before void tasks existed
    del saved["identity"]["model_config"]["raw_context"]  # ... and before the raw context
    torch.save(saved, last)
    history = Trainer(build_model(1, **SMALL), tiny_gp, config, tmp_path).fit(progress=False)
    assert len(history.epochs) == 2
    holes = TrainConfig(**EAGER, epochs=2, batch_size=64, device="cpu", hole_tasks=0.5)
    with pytest.raises(ValueError, match="hole_tasks=0.0"):
        Trainer(build_model(1, **SMALL), tiny_gp, holes, tmp_path).fit(progress=False)


def test_speed_settings_may_change_on_resume(tiny_gp, tmp_path) -> None:
    config = TrainConfig(**EAGER, epochs=2, batch_size=64, device="cpu")
    Trainer(build_model(1, **SMALL), tiny_gp, config, tmp_path).fit(progress=False, time_limit_s=0)
    faster = TrainConfig(epochs=2, batch_size=64, device="cpu", cpu_heap=False)  # bf16, compiled
    history = Trainer(build_model(1, **SMALL), tiny_gp, faster, tmp_path).fit(progress=False)
    assert len(history.epochs) == 2


def test_auto_precision_is_bf16_only_where_the_hardware_multiplies_it(
    tiny_gp, tmp_path, monkeypatch
) -> None:
    """Emulated bf16 made an AVX2-only CPU's step several times slower than fp32."""
    config = TrainConfig(compile=False, epochs=1, batch_size=64, device="cpu")
    assert config.precision == "auto"
    for native, expected in ((False, "fp32"), (True, "bf16")):
        monkeypatch.setattr(training, "native_bf16", lambda native=native: native)
        trainer = Trainer(build_model(1, **SMALL), tiny_gp, config, tmp_path / expected)
        assert trainer.settings["precision"] == expected
    assert training.resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert training.resolve_precision("fp32", torch.device("cuda")) == "fp32"
    with pytest.raises(ValueError, match="valid: auto, fp32, bf16"):
        TrainConfig(precision="fp16")


def test_heldout_loss_leaves_out_the_context(tiny_gp, tmp_path) -> None:
    config = TrainConfig(**EAGER, device="cpu", loss_pixels="heldout")
    trainer = Trainer(build_model(1, **SMALL), tiny_gp, config, tmp_path)
    values, valid = tiny_gp.test.values[:4], tiny_gp.test.valid[:4]
    context = torch.rand(valid.shape, generator=torch.Generator().manual_seed(0)) < 0.3
    loss, _ = trainer._loss(values, valid, context)
    y, mean, std = trainer._forward(values, context)
    heldout, _ = gaussian_nll(mean, std, y, valid & ~context)
    every, _ = gaussian_nll(mean, std, y, valid)
    torch.testing.assert_close(loss, heldout)
    assert not torch.isclose(loss, every)
    with pytest.raises(ValueError, match="valid: all, heldout"):
        TrainConfig(loss_pixels="context")


def test_truncated_checkpoint_is_named(tiny_gp, tmp_path) -> None:
    config = TrainConfig(**EAGER, epochs=1, batch_size=64, device="cpu")
    Trainer(build_model(1, **SMALL), tiny_gp, config, tmp_path).fit(progress=False)
    last = tmp_path / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(ValueError, match="last.pt is unreadable"):
        Trainer(build_model(1, **SMALL), tiny_gp, config, tmp_path).fit(progress=False)


def test_nan_validation_never_becomes_best(tiny_gp, tmp_path, monkeypatch) -> None:
    config = TrainConfig(**EAGER, epochs=2, batch_size=64, optimizer="adam", device="cpu")
    trainer = Trainer(build_model(1, **SMALL), tiny_gp, config, tmp_path)
    losses = iter([(5.0, 1.0), (float("nan"), float("nan"))])
    monkeypatch.setattr(
        trainer,
        "validate",
        lambda: dict(zip(("val_loss", "val_nll_per_pixel"), next(losses), strict=True)),
    )
    with pytest.raises(FloatingPointError, match="validation loss of epoch 2 is not finite"):
        trainer.fit(progress=False)
    assert torch.load(tmp_path / "best.pt", weights_only=False)["epoch"] == 1
    assert torch.load(tmp_path / "last.pt", weights_only=False)["epoch"] == 1
    assert json.loads((tmp_path / "history.json").read_text())["best_epoch"] == 1


def test_json_records_are_strict(tmp_path) -> None:
    training.write_json_atomic({"rmse": float("inf"), "x": [1.0, float("nan")]}, tmp_path / "a")
    assert json.loads((tmp_path / "a").read_text()) == {"rmse": None, "x": [1.0, None]}


def test_compiled_training_matches_eager(tiny_gp, tmp_path) -> None:
    """Same losses within rounding (Adam magnifies rounding in near-zero gradients, so the
    weights are not compared)."""
    config = TrainConfig(**EAGER, epochs=2, batch_size=48, optimizer="adam")
    eager = Trainer(build_model(1, seed=3, **SMALL), tiny_gp, config, tmp_path / "eager")
    compiled = Trainer(
        build_model(1, seed=3, **SMALL), tiny_gp, replace(config, compile=True), tmp_path / "c"
    )
    assert compiled.settings["compile"]
    for a, b in zip(
        eager.fit(progress=False).epochs, compiled.fit(progress=False).epochs, strict=True
    ):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-3)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-2)


def test_full_disk_names_the_checkpoint_and_keeps_the_old_one(tiny_gp, tmp_path, monkeypatch):
    config = TrainConfig(**EAGER, epochs=2, batch_size=64, device="cpu")
    Trainer(build_model(1, **SMALL), tiny_gp, config, tmp_path).fit(progress=False, time_limit_s=0)
    before = (tmp_path / "last.pt").read_bytes()

    def full_disk(obj, path):
        Path(path).write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 512")

    monkeypatch.setattr(training.torch, "save", full_disk)
    with pytest.raises(
        OSError, match=r"could not write checkpoint .*\.pt: .*unexpected pos.*free disk space"
    ):
        Trainer(build_model(1, **SMALL), tiny_gp, config, tmp_path).fit(progress=False)
    assert (tmp_path / "last.pt").read_bytes() == before
    assert not (tmp_path / "last.pt.tmp").exists()


def test_validation_scores_held_out_pixels_in_data_units(tiny_gp, tmp_path) -> None:
    """The held-out validation scores equal the test scorer's, pooled over pixels."""
    from npf.metrics import nll, rmse
    from npf.predictors import convcnp_predict
    from npf.scaling import ValueScaling

    # the trainer scales by the training set's rule; a scale of 2 checks the units
    splits = replace(tiny_gp, train=replace(tiny_gp.train, scaling=ValueScaling(2.0)))
    config = TrainConfig(**EAGER, epochs=1, batch_size=16, device="cpu")
    trainer = Trainer(build_model(1, seed=3, **SMALL), splits, config, tmp_path)
    # training contexts of 0-30 % leave some validation images without any: leave them out
    keep = trainer.val_context.flatten(1).any(1)
    trainer.val_values, trainer.val_valid, trainer.val_context = (
        trainer.val_values[keep],
        trainer.val_valid[keep],
        trainer.val_context[keep],
    )
    scores = trainer.validate()
    mean, std = convcnp_predict(
        trainer.model, trainer.scaling, trainer.val_values, trainer.val_context
    )
    held_out = (trainer.val_valid & ~trainer.val_context).numpy()
    truth = trainer.val_values.numpy()
    assert scores["val_heldout_rmse"] == pytest.approx(
        rmse(mean.numpy(), truth, held_out), rel=1e-4
    )
    assert scores["val_heldout_nll"] == pytest.approx(
        nll(mean.numpy(), std.numpy(), truth, held_out), rel=1e-4
    )
