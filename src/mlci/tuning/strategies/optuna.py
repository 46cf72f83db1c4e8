"""The Optuna strategy (the default): TPE over the model's search space, with pruning and warm start.

The study lives in the run store (runs/<id>/study.db, or any SQLAlchemy URL as `storage`) and
is rebuilt from the trial folders on every call, so `mlci tweak` in a fresh process continues it.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from mlci.core.config import find_config
from mlci.core.states import TrialStatus
from mlci.core.errors import MlciError
from mlci.tuning.pruning import read_pruned
from mlci.tuning.spaces import (Param, decode, distributions, encode, module_space, optimizer_space, rate_range,
                                 script_space, space_for)
from mlci.core.store import Run, RunStore, Trial
from mlci.tuning.strategies.base import Proposal, Strategy
from mlci.tuning.study import make_pruner, open_storage, open_study, quiet_optuna, storage_url, study_name

# TPE models the history once this many trials are done (baseline, centre and warm-start history count).
STARTUP_TRIALS = 4
# An asked point that repeats a finished trial is told that trial's result and asked again, this many times.
MAX_REPEATS = 25
# Earlier runs of the same model feed the study at most this many trials (the newest first).
MAX_HISTORY = 200
SOURCE = "mlci_source"  # user attr of an enqueued trial: why it is proposed
KEY = "mlci_key"  # user attr of a trial added from the run store: "<run id>#<trial>"
# A Keras module's first look trains this many epochs; the second the same model this many times as long.
DEEP = ("keras", "torch")  # trained in epochs: cheap first looks before the search
LOOK_EPOCHS = 3
LOOK_FACTOR = 3
REFUSED = "mlci_refused"  # user attr of an asked trial that could not train (why): it failed before any training


def reported_key(metric: str) -> str:
    """The per-epoch validation value the harness reports for this metric."""
    return "val_loss" if metric == "loss" else "val_accuracy"


class OptunaStrategy(Strategy):
    name = "optuna"
    # The study (Optuna, SQLAlchemy, Alembic's schema check) and the forest behind the importances (scikit-learn).
    imports = ("optuna", "sqlalchemy.orm", "alembic.script", "optuna.importance", "sklearn.ensemble")
    prunes = True
    warm_starts = True
    starts_at_centre = True

    def __init__(self, run: Run, config, baseline: dict[str, Any], framework: str):
        super().__init__(run, config, baseline, framework)
        record = run.record()
        architecture = record.kind.architecture if record.kind else "ann"
        self.model_file = Path(record.model_file)
        self.space: dict[str, Param] = space_for(self.baseline, framework=framework, architecture=architecture,
                                                 model_file=self.model_file, overrides=config.space,
                                                 source=str(find_config(self.model_file) or "mlci.toml"))
        self.script = record.kind is not None and record.kind.mode == "script"
        if self.script:
            self.space = script_space(self.space, self.baseline)
        declared = set(config.space or {}) | set(module_space(self.model_file) or {})
        self.rates_by_optimizer = "learning_rate" not in declared and "optimizer" not in declared
        if self.rates_by_optimizer:
            self.space = optimizer_space(self.space, self.baseline)
        self.metric = config.metric
        self.direction = self.objective.direction
        self.url = storage_url(run, config.storage)

    # ------------------------------------------------------------------ study

    def sampler(self, seed: int) -> Any:
        optuna = quiet_optuna()
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS, multivariate=True,
                                          constant_liar=True)

    def pruner_spec(self) -> dict[str, Any] | None:
        if not self.prunes or self.config.pruner == "none":
            return None
        return {"name": self.config.pruner, "n_startup_trials": 2, "n_warmup_steps": 2}

    def study(self) -> Any:
        study = open_study(self.url, study_name(self.run), self.direction)
        study.pruner = make_pruner(self.pruner_spec())
        # A fixed seed per process would repeat the same proposals in every `mlci tweak`: derive it
        # from the run's seed and how far the study is.
        done = len(study.get_trials(deepcopy=False))
        study.sampler = self.sampler((self.config.seed * 1_000_003 + done * 7_919) % (2**31 - 1))
        return study

    # ------------------------------------------------------------------ run store -> study

    def _finished(self, trial: Trial) -> tuple[str, float | None, dict[str, float]] | None:
        """(state, value, intermediate values) of a trial that has ended; None while it runs."""
        state = trial.state()
        pruned = read_pruned(trial)
        if state.status == TrialStatus.PRUNED or pruned is not None:
            steps = pruned.intermediate if pruned else {}
            return "PRUNED", None, steps
        if trial.has_metrics():
            try:
                metrics = trial.metrics()
            except MlciError:
                return "FAIL", None, {}
            values = metrics.history.get(reported_key(self.metric), [])
            steps = {str(i + 1): v for i, v in enumerate(values) if isinstance(v, (int, float)) and math.isfinite(v)}
            if metrics.value is None or not math.isfinite(metrics.value):
                return "FAIL", None, steps
            return "COMPLETE", float(metrics.value), steps
        if state.status == TrialStatus.FAILED:
            return "FAIL", None, {}
        return None

    def _params_of(self, hparams: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        dists = distributions(self.space)
        params, used = {}, {}
        for name, param in self.space.items():
            if name in hparams and param.contains(hparams[name]):
                params[name], used[name] = encode(hparams[name]), dists[name]
        return params, used

    def _add(self, study: Any, key: str, hparams: dict[str, Any], outcome: tuple) -> None:
        optuna = quiet_optuna()
        state, value, steps = outcome
        params, used = self._params_of(hparams)
        frozen = optuna.trial.create_trial(
            state=getattr(optuna.trial.TrialState, state), value=value, params=params, distributions=used,
            user_attrs={KEY: key}, intermediate_values={int(k): float(v) for k, v in steps.items()})
        study.add_trial(frozen)

    def sync(self, study: Any) -> None:
        """Tell the study what the run store knows: finished trials, the baseline, orphans of a kill."""
        optuna = quiet_optuna()
        running = optuna.trial.TrialState.RUNNING
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        keys = {t.user_attrs.get(KEY) for t in by_number.values()}
        linked: dict[int, Trial] = {}
        for trial in self.run.trials():
            try:
                record = trial.hparams()
            except MlciError:
                continue
            link = record.optuna_link()
            number = link.get("trial") if link.get("study") == study_name(self.run) else None
            outcome = self._finished(trial)
            if number is not None and number in by_number:
                linked[number] = trial
                if outcome is not None and by_number[number].state == running:
                    state, value, steps = outcome
                    self._tell(study, number, state, value, steps, by_number[number])
            elif outcome is not None and f"{self.run.id}#{trial.number}" not in keys:
                self._add(study, f"{self.run.id}#{trial.number}", record.hparams, outcome)
        # Asked, but no trial folder took it (the process died between ask and tell): close it as
        # failed and ask for the same point again, so the kill costs nothing.
        for number, frozen in by_number.items():
            if frozen.state != running:
                continue
            owner = linked.get(number)
            if owner is not None and TrialStatus(owner.state().status).is_open():
                continue
            if owner is None:
                study.tell(number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
                study.enqueue_trial(frozen.params, user_attrs={SOURCE: f"re-proposed:{number}"})

    def _tell(self, study: Any, number: int, state: str, value: float | None, steps: dict[str, float],
              frozen: Any) -> None:
        optuna = quiet_optuna()
        storage = study._storage
        for step, step_value in steps.items():
            if int(step) not in frozen.intermediate_values:
                try:
                    storage.set_trial_intermediate_value(frozen._trial_id, int(step), float(step_value))
                except Exception:
                    break  # intermediate values only guide the pruner; the final value matters
        study.tell(number, value if state == "COMPLETE" else None, state=getattr(optuna.trial.TrialState, state),
                   skip_if_finished=True)

    # ------------------------------------------------------------------ warm start and first points

    def earlier_runs(self) -> list[Run]:
        """Other runs of the same model (other commits or contents) in this store, oldest first."""
        store: RunStore = self.run.store
        mine = self.run.record()
        found = []
        for other in store.runs():
            if other.id == self.run.id:
                continue
            try:
                record = other.record()
            except MlciError:
                continue
            if record.model_name == mine.model_name and (record.kind == mine.kind or record.kind is None):
                found.append((record.created_at, other))
        return [run for _, run in sorted(found, key=lambda pair: pair[0])]

    def _warm_start(self, study: Any) -> bool:
        """Earlier runs' trials become history; the latest run's best is the first point to try."""
        runs = self.earlier_runs()
        if not runs:
            return False
        added = 0
        for other in reversed(runs):
            for trial in reversed(other.trials()):
                if added >= MAX_HISTORY:
                    break
                try:
                    record = trial.hparams()
                except MlciError:
                    continue
                outcome = self._finished(trial)
                if outcome is None:
                    continue
                self._add(study, f"{other.id}#{trial.number}", {**self.baseline, **record.hparams}, outcome)
                added += 1
        for other in reversed(runs):
            record = other.record()
            if record.best_trial is None:
                continue
            try:
                best = other.trial(record.best_trial).hparams().hparams
            except MlciError:
                continue
            candidate = {**self.baseline, **{k: v for k, v in best.items() if k in self.baseline}}
            params, _ = self._params_of(candidate)
            if candidate != self.baseline and params:
                study.enqueue_trial(params, user_attrs={SOURCE: f"warm-start:{other.id}#{record.best_trial}"})
                return True
        return bool(added)

    def centre(self) -> dict[str, Any]:
        """The middle of every range (geometric for log ranges), first choice of each list."""
        point = {}
        for name, p in self.space.items():
            if p.type == "categorical":
                point[name] = encode(p.choices[0])
                continue
            middle = math.sqrt(p.low * p.high) if p.log else (p.low + p.high) / 2
            if p.type == "int":
                middle = int(round(middle))
            elif p.step:
                middle = p.low + round((middle - p.low) / p.step) * p.step
            point[name] = middle
        return point

    def _near(self, wished: dict[str, Any]) -> dict[str, Any]:
        """The baseline with each wished value moved into its range (a knob the model lacks is left out)."""
        point = {name: encode(self.baseline[name]) for name, p in self.space.items()
                 if name in self.baseline and p.contains(self.baseline[name])}
        for name, value in wished.items():
            param = self.space.get(name)
            if param is None or name not in self.baseline:
                continue
            if param.type != "categorical":
                value = min(max(value, param.low), param.high)
                value = int(round(value)) if param.type == "int" else value
            if param.contains(value):
                point[name] = encode(value)
        return point

    def first_look(self) -> dict[str, Any]:
        """A Keras or PyTorch script's first proposal: what most often lifts a weak script at little cost (the
        ladder's first steps at once): a few more epochs, at least 64 units, Adam at its default rate (where the
        optimizer is a knob: a PyTorch script keeps its optimizer, so its own rate); the layers, filters and
        dropout as the script has them (a middle of every range would train 5x the epochs)."""
        wished = {"epochs": max(3, 2 * int(self.baseline.get("epochs") or 1)),
                  "units": max(64, int(self.baseline.get("units") or 64))}
        if "optimizer" in self.baseline:
            wished.update(optimizer="adam", learning_rate=1e-3)
        return self._near(wished)

    def module_looks(self) -> list[dict[str, Any]]:
        """A Keras or PyTorch model module's first proposals, cheap before expensive as Hyperband's first bracket: a
        promising model (at least 2 conv blocks of 32 filters, a dense layer of 256 units, Adam at 3e-3) for
        LOOK_EPOCHS epochs, then the same model for LOOK_FACTOR times as many. The centre of the space
        would train 10 epochs of a middling model at once."""
        int_of = lambda name, floor: max(floor, int(self.baseline.get(name) or 0))  # noqa: E731
        model = {"conv_blocks": int_of("conv_blocks", 2), "filters": int_of("filters", 32),
                 "dense_layers": int_of("dense_layers", 1), "units": int_of("units", 256),
                 "optimizer": "adam", "learning_rate": 3e-3}
        looks = [self._near({**model, "epochs": LOOK_EPOCHS}), self._near({**model, "epochs": LOOK_EPOCHS * LOOK_FACTOR})]
        return [look for i, look in enumerate(looks) if look not in looks[:i]]

    def _first_points(self, study: Any) -> None:
        if study.user_attrs.get("mlci_started"):
            return
        study.set_user_attr("mlci_started", True)
        if self.warm_starts and self._warm_start(study):
            return
        if not (self.starts_at_centre and self.space):
            return
        if self.framework in DEEP and self.script:
            study.enqueue_trial(self.first_look(), user_attrs={SOURCE: "first-look"})
        elif self.framework in DEEP:
            for look in self.module_looks():
                study.enqueue_trial(look, user_attrs={SOURCE: "first-look"})
        else:
            study.enqueue_trial(self.centre(), user_attrs={SOURCE: "centre"})

    # ------------------------------------------------------------------ Strategy

    def propose(self) -> Proposal | None:
        if not self.space:
            return None
        study = self.study()
        self.sync(study)
        self._first_points(study)
        self._study = study
        dists = distributions(self.space)
        known = self._known_outcomes()
        for frozen in study.get_trials(deepcopy=False, states=(quiet_optuna().trial.TrialState.FAIL,)):
            if REFUSED in frozen.user_attrs:  # refused in an earlier process: asked again, refused again at once
                decoded = {n: decode(self.space[n], v) for n, v in frozen.params.items() if n in self.space}
                known.setdefault(_key({**self.baseline, **decoded}), ("FAIL", None))
        for _ in range(MAX_REPEATS):
            asked = self._ask(study, dists)
            hparams = {**self.baseline, **{n: decode(self.space[n], v) for n, v in asked.params.items()}}
            seen = known.get(_key(hparams))
            if seen is None:
                return self._proposal(study, asked, hparams)
            # A point already trained: the study learns its result again instead of training it twice.
            state, value = seen
            optuna = quiet_optuna()
            study.tell(asked, value if state == "COMPLETE" else None, state=getattr(optuna.trial.TrialState, state))
        return None

    def _conditional_rate(self) -> bool:
        return (self.rates_by_optimizer and self.framework != "sklearn" and "optimizer" in self.space
                and "learning_rate" in self.space)

    def _ask(self, study: Any, dists: dict[str, Any]) -> Any:
        """Ask the study; the learning rate is asked after the optimizer, within that optimizer's range."""
        if not self._conditional_rate():
            return study.ask(fixed_distributions=dists)
        asked = study.ask(fixed_distributions={n: d for n, d in dists.items() if n != "learning_rate"})
        optimizer = decode(self.space["optimizer"], asked.params["optimizer"])
        low, high = rate_range(optimizer, self.baseline)
        asked.suggest_float("learning_rate", low, high, log=True)
        return asked

    def _known_outcomes(self) -> dict[str, tuple[str, float | None]]:
        known = {}
        for trial in self.run.trials():
            try:
                hparams = trial.hparams().hparams
            except MlciError:
                continue
            outcome = self._finished(trial)
            known[_key({**self.baseline, **hparams})] = (outcome[0], outcome[1]) if outcome else ("FAIL", None)
        return known

    def _best(self) -> tuple[int | None, dict[str, Any] | None, float | None]:
        best_number, best_hparams, best_value = None, None, None
        for trial in self.run.trials():
            if not trial.has_metrics():
                continue
            try:
                value, hparams = trial.metrics().value, trial.hparams().hparams
            except MlciError:
                continue
            if self.objective.better(value, best_value):
                best_number, best_hparams, best_value = trial.number, hparams, value
        return best_number, best_hparams, best_value

    def _proposal(self, study: Any, asked: Any, hparams: dict[str, Any]) -> Proposal:
        source = asked.user_attrs.get(SOURCE)
        proposed_by = f"{self.name}:{source.split(':')[0]}" if source else f"{self.name}:{self.sampler_name}"
        parent, parent_hparams, _ = self._best()
        reference = parent_hparams or self.baseline
        changes = [f"{k} {_show(reference.get(k))} -> {_show(v)}" for k, v in hparams.items() if reference.get(k) != v]
        change = ", ".join(changes) if changes else "same as the best"
        if source and source.startswith("warm-start:"):
            change = f"best of {source.split(':', 1)[1]}: {change}"
        link = {"storage": self.url, "study": study_name(self.run), "trial": asked.number,
                "trial_id": asked._trial_id, "direction": self.direction, "report": reported_key(self.metric),
                "pruner": self.pruner_spec()}
        return Proposal(hparams, proposed_by, parent=parent, change=change, extra={"optuna": link})

    sampler_name = "tpe"

    def refuse(self, proposal: Proposal, why: str) -> None:
        """The study learns that this point failed before training (state FAIL, the reason as a user attr)."""
        super().refuse(proposal, why)
        link = proposal.extra.get("optuna") or {}
        study = getattr(self, "_study", None)
        if study is None or link.get("trial") is None:
            return
        study._storage.set_trial_user_attr(link["trial_id"], REFUSED, why[:500])
        study.tell(link["trial"], state=quiet_optuna().trial.TrialState.FAIL, skip_if_finished=True)

    def observe(self, trial: Trial) -> None:
        self.sync(self.study())

    def finish(self) -> None:
        """At the end of a run: tell the study the last results, write the parameter importances."""
        study = self.study()
        self.sync(study)
        write_importances(self.run, study)


def _show(value: Any) -> str:
    """A value as a person reads it in a change line: 0.003162 rather than 0.0031622776601683794."""
    return f"{value:.4g}" if isinstance(value, float) else repr(value)


def _key(hparams: dict[str, Any]) -> str:
    import json

    return json.dumps(hparams, sort_keys=True, default=str)


class RandomStrategy(OptunaStrategy):
    """Random search over the same space: the reference that any smarter strategy must beat."""

    name = "random"
    prunes = False
    warm_starts = False
    starts_at_centre = False
    sampler_name = "random"

    def sampler(self, seed: int) -> Any:
        return quiet_optuna().samplers.RandomSampler(seed=seed)


def importances(run: Run, study: Any | None = None) -> dict[str, float]:
    """Optuna's parameter importances (fANOVA) over the finished trials; {} with too few of them."""
    optuna = quiet_optuna()
    if study is None:
        if not run.study_path.exists():
            return {}
        study = optuna.load_study(study_name=study_name(run), storage=open_storage(storage_url(run, None)))
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 3:
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study))
    except Exception:  # too few distinct values, a single-valued parameter: nothing to say
        return {}


def write_importances(run: Run, study: Any | None = None) -> Path | None:
    """runs/<id>/importances.html: the fragment report.html shows under the trial table."""
    found = importances(run, study)
    path = run.dir / "importances.html"
    if not found:
        path.unlink(missing_ok=True)
        return None
    rows = "".join(f"<tr><td>{html.escape(name)}</td><td>{value:.3f}</td>"
                   f"<td><div style='background:#1565c0;height:10px;width:{max(1, int(value * 300))}px'></div></td></tr>"
                   for name, value in found.items())
    path.write_text("<h2>Parameter importances (Optuna, fANOVA)</h2>\n"
                    "<p>How much of the metric's variation across the trials each hyperparameter explains.</p>\n"
                    f"<table><tr><th>hyperparameter</th><th>importance</th><th></th></tr>{rows}</table>\n",
                    encoding="utf-8")
    return path
