"""with_fallbacks: alternatives in order, every cause kept when all fail."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from jira_orchestrator._core.errors import InvalidMessage, JiraOrchestratorError
from jira_orchestrator.resilience import AllFallbacksFailed, ResilienceConfigError, with_fallbacks


class Down(Exception):
    pass


def answer(value: str, log: list[str]) -> Callable[[], Awaitable[str]]:
    async def call() -> str:
        log.append(value)
        return value

    return call


def failing(
    message: str, log: list[str], error: type[Exception] = Down
) -> Callable[[], Awaitable[str]]:
    async def call() -> str:
        log.append(message)
        raise error(message)

    return call


async def test_the_primary_answers_when_it_can() -> None:
    log: list[str] = []
    assert await with_fallbacks(answer("primary", log), answer("backup", log)) == "primary"
    assert log == ["primary"]


async def test_alternatives_are_tried_in_order_until_one_answers() -> None:
    log: list[str] = []
    result = await with_fallbacks(
        failing("primary", log), failing("backup", log), answer("cache", log), answer("x", log)
    )
    assert result == "cache"
    assert log == ["primary", "backup", "cache"]


async def test_when_all_fail_one_group_holds_every_cause_in_order() -> None:
    log: list[str] = []
    with pytest.raises(AllFallbacksFailed) as caught:
        await with_fallbacks(failing("a", log), failing("b", log, KeyError), failing("c", log))
    group = caught.value
    assert isinstance(group, ExceptionGroup)
    assert isinstance(group, JiraOrchestratorError)
    assert [type(e) for e in group.exceptions] == [Down, KeyError, Down]
    assert [e.args[0] for e in group.exceptions] == ["a", "b", "c"]
    assert "all 3 alternatives failed" in str(group)


async def test_the_group_works_with_except_star() -> None:
    log: list[str] = []
    caught: list[BaseException] = []
    try:
        await with_fallbacks(failing("a", log), failing("b", log, KeyError))
    except* KeyError as keys:
        caught.extend(keys.exceptions)
    except* Down as downs:
        caught.extend(downs.exceptions)
    assert sorted(type(e).__name__ for e in caught) == ["Down", "KeyError"]


async def test_a_lone_primary_that_fails_is_still_grouped() -> None:
    with pytest.raises(AllFallbacksFailed) as caught:
        await with_fallbacks(failing("only", []))
    assert len(caught.value.exceptions) == 1


async def test_caller_errors_stop_the_chain_at_once() -> None:
    log: list[str] = []
    with pytest.raises(InvalidMessage):
        await with_fallbacks(failing("bad", log, InvalidMessage), answer("backup", log))
    assert log == ["bad"]


async def test_fall_back_on_and_give_up_on_choose_what_moves_on() -> None:
    log: list[str] = []
    with pytest.raises(KeyError):
        await with_fallbacks(failing("a", log, KeyError), answer("b", log), fall_back_on=Down)
    result = await with_fallbacks(
        failing("a", log, InvalidMessage), answer("b", log), give_up_on=()
    )
    assert result == "b"
    with pytest.raises(Down):
        await with_fallbacks(
            failing("x", log), answer("y", log), give_up_on=lambda e: str(e) == "x"
        )


@pytest.mark.parametrize(
    ("args", "option"),
    [(("not callable",), "primary"), ((None,), "primary")],
)
async def test_a_non_callable_primary_is_refused(args: tuple[object, ...], option: str) -> None:
    with pytest.raises(ResilienceConfigError) as caught:
        await with_fallbacks(*args)  # type: ignore[arg-type]
    assert caught.value.option == option


async def test_a_non_callable_fallback_is_refused_before_anything_runs() -> None:
    log: list[str] = []
    with pytest.raises(ResilienceConfigError, match=r"fallbacks\[1\]: must be callable"):
        await with_fallbacks(answer("a", log), answer("b", log), 42)  # type: ignore[arg-type]
    assert log == []


async def test_bad_matchers_are_refused() -> None:
    with pytest.raises(ResilienceConfigError, match="fall_back_on"):
        await with_fallbacks(answer("a", []), fall_back_on="Down")  # type: ignore[arg-type]
    with pytest.raises(ResilienceConfigError, match="give_up_on"):
        await with_fallbacks(answer("a", []), give_up_on=[object])  # type: ignore[list-item]
