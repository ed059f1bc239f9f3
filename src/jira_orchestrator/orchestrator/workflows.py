"""Workflow files: chains written in YAML or JSON, built into `Step` objects.

A file holds ``workflows:``, a mapping of names to step definitions (or one step
definition at the top level, with an ``id``). A step definition is an object:

- ``plugin`` and ``command`` (and ``parameters``): a `PluginStep` over the given bus;
- ``call``: a Python callable registered under that name;
- ``kind: sequential | parallel | saga`` with ``steps`` (``allow_partial`` for parallel);
  ``steps`` alone means sequential;
- ``kind: conditional`` with ``branches: [{when, step}]`` and ``otherwise``;
- ``use``: another workflow of the same file, by name (cycles are refused).

Every step may have ``id`` (required inside a chain), ``when`` and ``transform`` (names of
registered callables), ``timeout`` (seconds) and ``compensate`` (a registered callable's
name, or ``{call}`` or ``{plugin, command, parameters}``). Every problem is reported at
once in a `WorkflowError`, each as ``file: path: reason``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from jira_orchestrator.messagebus import MessageBus
from jira_orchestrator.orchestrator.chains import (
    Compensation,
    Conditional,
    FunctionStep,
    Parallel,
    PluginStep,
    Saga,
    Sequential,
    Step,
)
from jira_orchestrator.orchestrator.errors import WorkflowError
from jira_orchestrator.orchestrator.rights import Plugins
from jira_orchestrator.orchestrator.sagastore import SagaStore

__all__ = ["STEP_KINDS", "StepRegistry", "build_workflows", "load_workflow", "load_workflows"]

STEP_KINDS = ("call", "conditional", "parallel", "plugin", "saga", "sequential", "use")
_COMMON = {"id", "kind", "when", "transform", "timeout", "compensate"}
_KEYS = {
    "call": _COMMON | {"call"},
    "plugin": _COMMON | {"plugin", "command", "parameters"},
    "sequential": _COMMON | {"steps"},
    "saga": _COMMON | {"steps"},
    "parallel": _COMMON | {"steps", "allow_partial"},
    "conditional": _COMMON | {"branches", "otherwise"},
    "use": _COMMON | {"use"},
}


class StepRegistry(dict[str, Callable[..., Any]]):
    """Python callables that workflow files name in ``call``, ``when``, ``transform`` and
    ``compensate``. ``@registry.register()`` registers a function under its own name."""

    def register(
        self, name: str | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register the function as ``name`` (default: its ``__name__``)."""

        def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
            key = name or function.__name__
            if key in self:
                raise ValueError(f"{key!r} is registered already")
            self[key] = function
            return function

        return decorate


class _Builder:
    def __init__(
        self,
        source: str,
        definitions: Mapping[str, Any],
        registry: Mapping[str, Callable[..., Any]],
        bus: MessageBus | None,
        saga_store: SagaStore | None,
        plugins: Plugins | None = None,
    ) -> None:
        self.plugins = plugins
        self.source = source
        self.definitions = definitions
        self.registry = registry
        self.bus = bus
        self.saga_store = saga_store
        self.problems: list[str] = []
        self.stack: list[str] = []
        self.single = False

    def problem(self, path: str, reason: str) -> None:
        self.problems.append(f"{self.source}: {path}: {reason}")

    def check_ids(self, spec: Any, path: str, seen: dict[str, str]) -> None:
        """Report duplicate step ids in one workflow's definition, with both places."""
        if not isinstance(spec, dict):
            return
        step_id = spec.get("id")
        if isinstance(step_id, str):
            if step_id in seen:
                self.problem(
                    f"{path}.id", f"duplicate step id {step_id!r} (first at {seen[step_id]})"
                )
            else:
                seen[step_id] = path
        steps = spec.get("steps")
        if isinstance(steps, list):
            for index, item in enumerate(steps):
                self.check_ids(item, f"{path}.steps[{index}]", seen)
        branches = spec.get("branches")
        if isinstance(branches, list):
            for index, branch in enumerate(branches):
                if isinstance(branch, dict):
                    self.check_ids(branch.get("step"), f"{path}.branches[{index}].step", seen)
        self.check_ids(spec.get("otherwise"), f"{path}.otherwise", seen)

    def workflow(self, name: str, path: str) -> Step | None:
        """Build workflow ``name``; ``path`` is where it is referenced from."""
        if name in self.stack:
            cycle = " -> ".join([*self.stack[self.stack.index(name) :], name])
            self.problem(path, f"workflow cycle: {cycle}")
            return None
        self.stack.append(name)
        try:
            spec = self.definitions[name]
            if isinstance(spec, dict) and "id" not in spec:
                spec = {**spec, "id": name}
            return self.step(spec, "$" if self.single else f"workflows.{name}")
        finally:
            self.stack.pop()

    def callable(self, value: Any, path: str) -> Callable[..., Any] | None:
        if not isinstance(value, str) or not value:
            self.problem(path, f"must be the name of a registered callable, not {value!r}")
            return None
        function = self.registry.get(value)
        if function is None:
            known = ", ".join(sorted(self.registry)) or "none registered"
            self.problem(path, f"no callable registered as {value!r} (known: {known})")
            return None
        return function

    def kind(self, spec: dict[str, Any], path: str) -> str | None:
        kind = spec.get("kind")
        if kind is None:
            found = [key for key in ("plugin", "call", "use", "steps", "branches") if key in spec]
            if len(found) > 1:
                self.problem(path, f"ambiguous step: it has {' and '.join(found)}; give its kind")
                return None
            if not found:
                self.problem(
                    path, "cannot tell the step kind: give kind, plugin, call, use or steps"
                )
                return None
            return {"steps": "sequential", "branches": "conditional"}.get(found[0], found[0])
        if kind not in STEP_KINDS:
            self.problem(
                f"{path}.kind",
                f"unknown step kind {kind!r} (expected one of {', '.join(STEP_KINDS)})",
            )
            return None
        return str(kind)

    def step(self, spec: Any, path: str) -> Step | None:
        if not isinstance(spec, dict):
            self.problem(path, f"a step must be an object, not {type(spec).__name__}")
            return None
        kind = self.kind(spec, path)
        if kind is None:
            return None
        before = len(self.problems)
        for key in spec:
            if key not in _KEYS[kind]:
                allowed = ", ".join(sorted(_KEYS[kind]))
                self.problem(f"{path}.{key}", f"unknown key for a {kind} step (allowed: {allowed})")
        step_id = spec.get("id")
        if not isinstance(step_id, str) or not step_id.strip():
            self.problem(f"{path}.id", f"a step needs an id (a non-empty string), not {step_id!r}")
        common: dict[str, Any] = {}
        if "when" in spec:
            common["condition"] = self.callable(spec["when"], f"{path}.when")
        if "transform" in spec:
            common["transform"] = self.callable(spec["transform"], f"{path}.transform")
        if "timeout" in spec:
            timeout = spec["timeout"]
            if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
                self.problem(
                    f"{path}.timeout", f"must be a positive number of seconds, not {timeout!r}"
                )
            else:
                common["timeout"] = timeout
        if "compensate" in spec:
            common["compensate"] = self.compensation(spec["compensate"], f"{path}.compensate")
        built = getattr(self, f"_{kind}")(spec, path, common)
        if len(self.problems) > before or built is None:
            return None
        return built  # type: ignore[no-any-return]

    def compensation(self, spec: Any, path: str) -> Compensation | None:
        if isinstance(spec, str):
            return self.callable(spec, path)
        if not isinstance(spec, dict):
            self.problem(path, "must be a registered callable's name, {call} or {plugin, command}")
            return None
        if "call" in spec:
            extra = set(spec) - {"call"}
            if extra:
                self.problem(path, f"unknown keys {sorted(extra)} beside call")
            return self.callable(spec["call"], f"{path}.call")
        return self.step({"id": f"{path}#compensate", **spec, "kind": "plugin"}, path)

    def _call(self, spec: dict[str, Any], path: str, common: dict[str, Any]) -> Step | None:
        function = self.callable(spec.get("call"), f"{path}.call")
        if function is None or self.problems:
            return None
        return FunctionStep(spec["id"], function, **common)

    def _plugin(self, spec: dict[str, Any], path: str, common: dict[str, Any]) -> Step | None:
        plugin, command = spec.get("plugin"), spec.get("command")
        parameters = spec.get("parameters", {})
        if not isinstance(plugin, str) or not plugin or "/" in plugin or "." in plugin:
            self.problem(f"{path}.plugin", f"must be a plugin id, not {plugin!r}")
        if not isinstance(command, str) or not command:
            self.problem(f"{path}.command", f"must be a non-empty string, not {command!r}")
        if not isinstance(parameters, dict):
            self.problem(f"{path}.parameters", "must be an object")
        if self.bus is None:
            self.problem(path, "a plugin step needs a bus: pass bus=... when loading")
            return None
        if self.problems:
            return None
        return PluginStep(
            spec["id"],
            str(plugin),
            str(command),
            bus=self.bus,
            parameters=parameters,
            plugins=self.plugins,
            **common,
        )

    def _children(self, spec: dict[str, Any], path: str) -> list[Step] | None:
        steps = spec.get("steps")
        if not isinstance(steps, list) or not steps:
            self.problem(f"{path}.steps", "must be a non-empty list of steps")
            return None
        built = [self.step(item, f"{path}.steps[{index}]") for index, item in enumerate(steps)]
        return None if any(step is None for step in built) else built  # type: ignore[return-value]

    def _sequential(self, spec: dict[str, Any], path: str, common: dict[str, Any]) -> Step | None:
        steps = self._children(spec, path)
        return None if steps is None else self._make(Sequential, spec, path, steps, common)

    def _saga(self, spec: dict[str, Any], path: str, common: dict[str, Any]) -> Step | None:
        steps = self._children(spec, path)
        if steps is None:
            return None
        return self._make(Saga, spec, path, steps, {**common, "store": self.saga_store})

    def _parallel(self, spec: dict[str, Any], path: str, common: dict[str, Any]) -> Step | None:
        partial = spec.get("allow_partial", False)
        if not isinstance(partial, bool):
            self.problem(f"{path}.allow_partial", f"must be true or false, not {partial!r}")
        steps = self._children(spec, path)
        if steps is None:
            return None
        return self._make(Parallel, spec, path, steps, {**common, "allow_partial": partial})

    def _conditional(self, spec: dict[str, Any], path: str, common: dict[str, Any]) -> Step | None:
        branches = spec.get("branches", [])
        built: list[tuple[Callable[..., Any], Step]] = []
        if not isinstance(branches, list):
            self.problem(f"{path}.branches", "must be a list of {when, step}")
            branches = []
        for index, branch in enumerate(branches):
            where = f"{path}.branches[{index}]"
            if not isinstance(branch, dict) or set(branch) != {"when", "step"}:
                self.problem(where, "a branch is exactly {when: <callable name>, step: {...}}")
                continue
            when = self.callable(branch["when"], f"{where}.when")
            step = self.step(branch["step"], f"{where}.step")
            if when is not None and step is not None:
                built.append((when, step))
        otherwise = None
        if "otherwise" in spec:
            otherwise = self.step(spec["otherwise"], f"{path}.otherwise")
        if not branches and "otherwise" not in spec:
            self.problem(path, "a conditional needs branches or otherwise")
        return self._make(Conditional, spec, path, built, {**common, "otherwise": otherwise})

    def _use(self, spec: dict[str, Any], path: str, common: dict[str, Any]) -> Step | None:
        name = spec.get("use")
        if not isinstance(name, str) or name not in self.definitions:
            known = ", ".join(sorted(self.definitions))
            self.problem(f"{path}.use", f"no workflow named {name!r} in this file (known: {known})")
            return None
        inner = self.workflow(name, f"{path}.use")
        if inner is None:
            return None
        return self._make(Sequential, spec, path, [inner], common)

    def _make(
        self, cls: type[Step], spec: dict[str, Any], path: str, steps: Any, options: dict[str, Any]
    ) -> Step | None:
        if self.problems:
            return None
        try:
            return cls(spec["id"], steps, **options)  # type: ignore[call-arg]
        except (WorkflowError, TypeError, ValueError) as exc:
            for line in getattr(exc, "problems", [str(exc)]):
                self.problem(path, line)
            return None


def build_workflows(
    data: Any,
    *,
    source: str = "<workflow>",
    registry: Mapping[str, Callable[..., Any]] | None = None,
    bus: MessageBus | None = None,
    saga_store: SagaStore | None = None,
    plugins: Plugins | None = None,
) -> dict[str, Step]:
    """Build the workflows of already-parsed data (see the module docstring).

    ``plugins`` (their manifests) holds plugin steps run on a plugin's bus handle to that
    plugin's ``canRouteTo`` and the targets' ``acceptsRoutingFrom`` (`PluginStep`). Returns
    steps by workflow name; raises `WorkflowError` listing every problem as
    ``source: path: reason``.
    """
    registry = {} if registry is None else registry
    if not isinstance(registry, Mapping):
        raise TypeError(f"registry must be a mapping of names to callables, not {registry!r}")
    if not isinstance(data, dict):
        raise WorkflowError(
            [f"{source}: $: a workflow file holds an object, not {type(data).__name__}"]
        )
    if "workflows" in data:
        extra = set(data) - {"workflows", "version"}
        definitions = data["workflows"]
        problems = [f"{source}: $.{key}: unknown top-level key" for key in sorted(extra)]
        if not isinstance(definitions, dict) or not definitions:
            problems.append(f"{source}: workflows: must be a non-empty mapping of names to steps")
        if problems:
            raise WorkflowError(problems)
        builder = _Builder(source, definitions, registry, bus, saga_store, plugins)
        for name, spec in definitions.items():
            top = {"id": name, **spec} if isinstance(spec, dict) else spec
            builder.check_ids(top, f"workflows.{name}", {})
        built = {name: builder.workflow(name, f"workflows.{name}") for name in definitions}
    else:
        name = data.get("id")
        if not isinstance(name, str) or not name:
            raise WorkflowError([f"{source}: $.id: a single-workflow file needs an id"])
        builder = _Builder(source, {name: data}, registry, bus, saga_store, plugins)
        builder.single = True
        builder.check_ids(data, "$", {})
        built = {name: builder.workflow(name, "$")}
    if builder.problems:
        raise WorkflowError(list(dict.fromkeys(builder.problems)))
    return {name: step for name, step in built.items() if step is not None}


def _parse(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowError([f"{path}: $: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowError([f"{path}: $: cannot read: {exc}"]) from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise WorkflowError(
                [f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"]
            ) from None
    if suffix in (".yaml", ".yml"):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "$"
            reason = getattr(exc, "problem", None) or str(exc)
            raise WorkflowError([f"{path}: {where}: invalid YAML: {reason}"]) from None
    raise WorkflowError([f"{path}: $: a workflow file ends in .yaml, .yml or .json"])


def load_workflows(
    path: str | os.PathLike[str],
    *,
    registry: Mapping[str, Callable[..., Any]] | None = None,
    bus: MessageBus | None = None,
    saga_store: SagaStore | None = None,
    plugins: Plugins | None = None,
) -> dict[str, Step]:
    """Load every workflow of a YAML or JSON file; raises `WorkflowError`.

    ``registry`` names the callables the file may use; ``bus`` carries plugin steps;
    ``saga_store`` persists the progress of the file's sagas; ``plugins`` holds plugin
    steps to the rights of the bus handle's plugin (`build_workflows`).
    """
    file = Path(path)
    return build_workflows(
        _parse(file),
        source=str(file),
        registry=registry,
        bus=bus,
        saga_store=saga_store,
        plugins=plugins,
    )


def load_workflow(
    path: str | os.PathLike[str],
    name: str | None = None,
    *,
    registry: Mapping[str, Callable[..., Any]] | None = None,
    bus: MessageBus | None = None,
    saga_store: SagaStore | None = None,
    plugins: Plugins | None = None,
) -> Step:
    """One workflow of a file: ``name``, or the only one; raises `WorkflowError`."""
    workflows = load_workflows(
        path, registry=registry, bus=bus, saga_store=saga_store, plugins=plugins
    )
    if name is None:
        if len(workflows) != 1:
            raise WorkflowError(
                [f"{path}: workflows: holds {', '.join(workflows)}; say which one to load"]
            )
        return next(iter(workflows.values()))
    if name not in workflows:
        raise WorkflowError(
            [f"{path}: workflows.{name}: no such workflow (has: {', '.join(workflows)})"]
        )
    return workflows[name]
