"""`KiwiWhale` (sync) and `AsyncKiwiWhale`: thin runners of the operations in `_core` over httpx.

Each public method is one line: it hands the operation's flow to the client's runner, which performs its steps
(an HTTP exchange, a sleep, a file download) with the sync or the async httpx client.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import httpx

from kiwiwhale_client import _core, errors
from kiwiwhale_client._core import UNSET, Call, Flow, Operations, Save, Settings, Sleep, T
from kiwiwhale_client.types import (
    ApiKey,
    AutoTopup,
    Card,
    Credits,
    Job,
    JobList,
    KeyCreated,
    KeyRotated,
    Model,
    PaymentSetup,
    Quote,
    Registration,
    Submission,
    Topup,
    TopupQuote,
    Usage,
    WebhookSecret,
)

DOWNLOAD_TIMEOUT = 300.0


class _Client:
    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = _core.DEFAULT_TIMEOUT,
        max_retries: int = _core.DEFAULT_MAX_RETRIES,
    ):
        settings = Settings.resolve(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)
        self._ops = Operations(settings)

    @property
    def base_url(self) -> str:
        return self._ops.settings.base_url

    @property
    def api_key(self) -> str | None:
        return self._ops.settings.api_key

    def _registered(self, registration: Registration) -> Registration:
        if not self.api_key:  # a client made without a key goes on as the new account
            self._ops.settings = replace(self._ops.settings, api_key=registration["api_key"])
        return registration


def _save_error(response: httpx.Response) -> errors.APIError:
    return errors.error_for(response, None)


class KiwiWhale(_Client):
    """The sync client. `KiwiWhale(api_key, base_url=…)`; both default to the environment, then the config file.

    Only requests that carry an `Idempotency-Key` (generate and top-up set one by themselves) are ever sent again,
    after a lost connection or a 5xx, with the same key: the server then answers the first answer, never twice.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = _core.DEFAULT_TIMEOUT,
        max_retries: int = _core.DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
    ):
        super().__init__(api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> KiwiWhale:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, flow: Flow[T]) -> T:
        result: Any = None
        try:
            while True:
                result = self._step(flow.send(result))
        except StopIteration as stop:
            return stop.value

    def _step(self, step: _core.Step) -> Any:
        if isinstance(step, Call):
            try:
                return self._http.request(**_core.request_args(self._ops.settings, step))
            except httpx.TransportError as exc:
                return exc
        if isinstance(step, Sleep):
            time.sleep(max(0.0, step.seconds))
            return None
        assert isinstance(step, Save)
        partial = step.path.with_name(step.path.name + ".part")
        try:
            with self._http.stream("GET", step.url, timeout=DOWNLOAD_TIMEOUT) as response:
                if not response.is_success:
                    response.read()
                    raise _save_error(response)
                with open(partial, "wb") as handle:
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
        except httpx.TransportError as exc:
            raise errors.APIConnectionError(f"Downloading {step.url}: {exc}") from exc
        partial.replace(step.path)
        return None

    # account
    def register(
        self, *, name: str | None = None, email: str | None = None, referral_code: str | None = None
    ) -> Registration:
        return self._registered(self._run(self._ops.register(name=name, email=email, referral_code=referral_code)))

    def credits(self) -> Credits:
        return self._run(self._ops.credits())

    def usage(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        kind: str | None = None,
        key: str | int | None = None,
    ) -> Usage:
        """Ledger entries, newest first; `key` (an id or prefix): only that key's."""
        return self._run(self._ops.usage(limit=limit, cursor=cursor, kind=kind, key=key))

    def webhook_secret(self, *, rotate: bool = False) -> WebhookSecret:
        return self._run(self._ops.webhook_secret(rotate=rotate))

    # keys
    def key_list(self) -> list[ApiKey]:
        """The keys this caller may manage (a key: itself and the keys it made), with limits and spend."""
        return self._run(self._ops.key_list())

    def key_create(
        self,
        name: str | None = None,
        *,
        scopes: Sequence[str] | None = None,
        spend_limit_day_credits: Decimal | int | str | None = None,
        spend_limit_month_credits: Decimal | int | str | None = None,
        spend_limit_total_credits: Decimal | int | str | None = None,
        allowed_models: Sequence[str] | None = None,
        allowed_ips: Sequence[str] | None = None,
        rpm_limit: int | None = None,
        concurrency_limit: int | None = None,
        expires_at: datetime | str | None = None,
    ) -> KeyCreated:
        """A new key with these limits (none given: no limit), shown once in `api_key`. A key may not create a key
        beyond its own scopes and limits (KeyEscalation); what the new key spends counts against its maker too."""
        return self._run(self._ops.key_create(_arguments(locals())))

    def key_update(
        self,
        key_id: str | int,
        *,
        name: str = UNSET,
        scopes: Sequence[str] = UNSET,
        spend_limit_day_credits: Decimal | int | str | None = UNSET,
        spend_limit_month_credits: Decimal | int | str | None = UNSET,
        spend_limit_total_credits: Decimal | int | str | None = UNSET,
        allowed_models: Sequence[str] | None = UNSET,
        allowed_ips: Sequence[str] | None = UNSET,
        rpm_limit: int | None = UNSET,
        concurrency_limit: int | None = UNSET,
        expires_at: datetime | str | None = UNSET,
    ) -> ApiKey:
        """Changes only the fields given; None clears a limit. In effect at once."""
        return self._run(self._ops.key_update(key_id, _arguments(locals(), "key_id")))

    def key_revoke(self, key_id: str | int) -> ApiKey:
        """Revokes the key (by id or prefix) and the keys it made, at once."""
        return self._run(self._ops.key_revoke(key_id))

    def key_rotate(self, key_id: str | int, *, grace_seconds: int = 0) -> KeyRotated:
        """A new key with the same name, scopes and limits; the old one revoked now or after `grace_seconds`."""
        return self._run(self._ops.key_rotate(key_id, grace_seconds=grace_seconds))

    # models
    def models(self, *, category: str | None = None) -> list[Model]:
        return self._run(self._ops.models(category=category))

    def model(self, public_model: str) -> Model:
        return self._run(self._ops.model(public_model))

    def quote(self, model: str, input: Mapping[str, Any] | None = None) -> Quote:
        return self._run(self._ops.quote(model, input))

    # jobs
    def generate(
        self,
        model: str,
        input: Mapping[str, Any] | None = None,
        *,
        wait: bool | float = False,
        idempotency_key: str | None = None,
        webhook_url: str | None = None,
        webhook_events: list[str] | None = None,
        max_cost_credits: Decimal | int | str | None = None,
        cancel_after: str | None = None,
        on_update: Callable[[Job | Submission], None] | None = None,
        step_seconds: int = _core.SERVER_MAX_WAIT,
    ) -> Job | Submission:
        """Submit a job. `wait=True` (up to 10 minutes) or `wait=N` seconds: answer the job as `jobs.php` shows it
        once it ends (`Prefer: wait`, then held polls; plain polls against a server that holds none); when the
        wait runs out first, the job as it is then. Without `wait`: the 202 submission."""
        flow = self._ops.generate(
            model,
            input,
            wait=wait,
            idempotency_key=idempotency_key,
            webhook_url=webhook_url,
            webhook_events=webhook_events,
            max_cost_credits=max_cost_credits,
            cancel_after=cancel_after,
            on_update=on_update,
            step_seconds=step_seconds,
        )
        return self._run(flow)

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = _core.DEFAULT_WAIT_SECONDS,
        on_update: Callable[[Job], None] | None = None,
        step_seconds: int = _core.SERVER_MAX_WAIT,
    ) -> Job:
        return self._run(self._ops.wait(job_id, timeout=timeout, on_update=on_update, step=step_seconds))

    def job(self, job_id: str) -> Job:
        return self._run(self._ops.job(job_id))

    def jobs(self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None) -> JobList:
        return self._run(self._ops.jobs(status=status, limit=limit, cursor=cursor))

    def cancel(self, job_id: str) -> Job:
        return self._run(self._ops.cancel(job_id))

    def download(self, job: Job | Mapping[str, Any], directory: str | os.PathLike[str] = ".") -> list[Path]:
        return self._run(self._ops.download(job, directory))

    # billing
    def topup_quote(self, credits: Decimal | int | str) -> TopupQuote:
        return self._run(self._ops.topup_quote(credits))

    def topup(self, credits: Decimal | int | str, *, idempotency_key: str | None = None) -> Topup:
        """Charges the saved card (real money) and adds `credits` to the wallet, once per Idempotency-Key."""
        return self._run(self._ops.topup(credits, idempotency_key=idempotency_key))

    def setup_payment(self) -> PaymentSetup:
        return self._run(self._ops.setup_payment())

    def confirm_payment_method(
        self, *, setup_intent_id: str | None = None, payment_method_id: str | None = None
    ) -> dict[str, Any]:
        flow = self._ops.confirm_payment_method(setup_intent_id=setup_intent_id, payment_method_id=payment_method_id)
        return self._run(flow)

    def payment_methods(self) -> list[Card]:
        return self._run(self._ops.payment_methods())

    def autotopup(self) -> AutoTopup:
        return self._run(self._ops.autotopup())

    def set_autotopup(
        self,
        enabled: bool,
        *,
        mode: Literal["fixed", "buffer"] | None = None,
        trigger_credits: Decimal | int | str | None = None,
        amount_credits: Decimal | int | str | None = None,
        target_credits: Decimal | int | str | None = None,
        daily_cap_credits: Decimal | int | str | None = None,
        monthly_cap_credits: Decimal | int | str | None = None,
    ) -> AutoTopup:
        """Auto top-up charges the saved card (real money) whenever the balance falls below `trigger_credits`."""
        return self._run(self._ops.autotopup_set(_autotopup_settings(locals())))


class AsyncKiwiWhale(_Client):
    """The async client: the same methods as `KiwiWhale`, as coroutines."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = _core.DEFAULT_TIMEOUT,
        max_retries: int = _core.DEFAULT_MAX_RETRIES,
        http_client: httpx.AsyncClient | None = None,
    ):
        super().__init__(api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncKiwiWhale:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _run(self, flow: Flow[T]) -> T:
        result: Any = None
        try:
            while True:
                result = await self._step(flow.send(result))
        except StopIteration as stop:
            return stop.value

    async def _step(self, step: _core.Step) -> Any:
        if isinstance(step, Call):
            try:
                return await self._http.request(**_core.request_args(self._ops.settings, step))
            except httpx.TransportError as exc:
                return exc
        if isinstance(step, Sleep):
            await asyncio.sleep(max(0.0, step.seconds))
            return None
        assert isinstance(step, Save)
        partial = step.path.with_name(step.path.name + ".part")
        try:
            async with self._http.stream("GET", step.url, timeout=DOWNLOAD_TIMEOUT) as response:
                if not response.is_success:
                    await response.aread()
                    raise _save_error(response)
                with open(partial, "wb") as handle:
                    async for chunk in response.aiter_bytes():
                        handle.write(chunk)
        except httpx.TransportError as exc:
            raise errors.APIConnectionError(f"Downloading {step.url}: {exc}") from exc
        partial.replace(step.path)
        return None

    # account
    async def register(
        self, *, name: str | None = None, email: str | None = None, referral_code: str | None = None
    ) -> Registration:
        flow = self._ops.register(name=name, email=email, referral_code=referral_code)
        return self._registered(await self._run(flow))

    async def credits(self) -> Credits:
        return await self._run(self._ops.credits())

    async def usage(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        kind: str | None = None,
        key: str | int | None = None,
    ) -> Usage:
        return await self._run(self._ops.usage(limit=limit, cursor=cursor, kind=kind, key=key))

    async def webhook_secret(self, *, rotate: bool = False) -> WebhookSecret:
        return await self._run(self._ops.webhook_secret(rotate=rotate))

    # keys
    async def key_list(self) -> list[ApiKey]:
        """The keys this caller may manage (a key: itself and the keys it made), with limits and spend."""
        return await self._run(self._ops.key_list())

    async def key_create(
        self,
        name: str | None = None,
        *,
        scopes: Sequence[str] | None = None,
        spend_limit_day_credits: Decimal | int | str | None = None,
        spend_limit_month_credits: Decimal | int | str | None = None,
        spend_limit_total_credits: Decimal | int | str | None = None,
        allowed_models: Sequence[str] | None = None,
        allowed_ips: Sequence[str] | None = None,
        rpm_limit: int | None = None,
        concurrency_limit: int | None = None,
        expires_at: datetime | str | None = None,
    ) -> KeyCreated:
        """A new key with these limits (none given: no limit), shown once in `api_key`. A key may not create a key
        beyond its own scopes and limits (KeyEscalation); what the new key spends counts against its maker too."""
        return await self._run(self._ops.key_create(_arguments(locals())))

    async def key_update(
        self,
        key_id: str | int,
        *,
        name: str = UNSET,
        scopes: Sequence[str] = UNSET,
        spend_limit_day_credits: Decimal | int | str | None = UNSET,
        spend_limit_month_credits: Decimal | int | str | None = UNSET,
        spend_limit_total_credits: Decimal | int | str | None = UNSET,
        allowed_models: Sequence[str] | None = UNSET,
        allowed_ips: Sequence[str] | None = UNSET,
        rpm_limit: int | None = UNSET,
        concurrency_limit: int | None = UNSET,
        expires_at: datetime | str | None = UNSET,
    ) -> ApiKey:
        """Changes only the fields given; None clears a limit. In effect at once."""
        return await self._run(self._ops.key_update(key_id, _arguments(locals(), "key_id")))

    async def key_revoke(self, key_id: str | int) -> ApiKey:
        """Revokes the key (by id or prefix) and the keys it made, at once."""
        return await self._run(self._ops.key_revoke(key_id))

    async def key_rotate(self, key_id: str | int, *, grace_seconds: int = 0) -> KeyRotated:
        """A new key with the same name, scopes and limits; the old one revoked now or after `grace_seconds`."""
        return await self._run(self._ops.key_rotate(key_id, grace_seconds=grace_seconds))

    # models
    async def models(self, *, category: str | None = None) -> list[Model]:
        return await self._run(self._ops.models(category=category))

    async def model(self, public_model: str) -> Model:
        return await self._run(self._ops.model(public_model))

    async def quote(self, model: str, input: Mapping[str, Any] | None = None) -> Quote:
        return await self._run(self._ops.quote(model, input))

    # jobs
    async def generate(
        self,
        model: str,
        input: Mapping[str, Any] | None = None,
        *,
        wait: bool | float = False,
        idempotency_key: str | None = None,
        webhook_url: str | None = None,
        webhook_events: list[str] | None = None,
        max_cost_credits: Decimal | int | str | None = None,
        cancel_after: str | None = None,
        on_update: Callable[[Job | Submission], None] | None = None,
        step_seconds: int = _core.SERVER_MAX_WAIT,
    ) -> Job | Submission:
        flow = self._ops.generate(
            model,
            input,
            wait=wait,
            idempotency_key=idempotency_key,
            webhook_url=webhook_url,
            webhook_events=webhook_events,
            max_cost_credits=max_cost_credits,
            cancel_after=cancel_after,
            on_update=on_update,
            step_seconds=step_seconds,
        )
        return await self._run(flow)

    async def wait(
        self,
        job_id: str,
        *,
        timeout: float = _core.DEFAULT_WAIT_SECONDS,
        on_update: Callable[[Job], None] | None = None,
        step_seconds: int = _core.SERVER_MAX_WAIT,
    ) -> Job:
        return await self._run(self._ops.wait(job_id, timeout=timeout, on_update=on_update, step=step_seconds))

    async def job(self, job_id: str) -> Job:
        return await self._run(self._ops.job(job_id))

    async def jobs(self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None) -> JobList:
        return await self._run(self._ops.jobs(status=status, limit=limit, cursor=cursor))

    async def cancel(self, job_id: str) -> Job:
        return await self._run(self._ops.cancel(job_id))

    async def download(self, job: Job | Mapping[str, Any], directory: str | os.PathLike[str] = ".") -> list[Path]:
        return await self._run(self._ops.download(job, directory))

    # billing
    async def topup_quote(self, credits: Decimal | int | str) -> TopupQuote:
        return await self._run(self._ops.topup_quote(credits))

    async def topup(self, credits: Decimal | int | str, *, idempotency_key: str | None = None) -> Topup:
        return await self._run(self._ops.topup(credits, idempotency_key=idempotency_key))

    async def setup_payment(self) -> PaymentSetup:
        return await self._run(self._ops.setup_payment())

    async def confirm_payment_method(
        self, *, setup_intent_id: str | None = None, payment_method_id: str | None = None
    ) -> dict[str, Any]:
        flow = self._ops.confirm_payment_method(setup_intent_id=setup_intent_id, payment_method_id=payment_method_id)
        return await self._run(flow)

    async def payment_methods(self) -> list[Card]:
        return await self._run(self._ops.payment_methods())

    async def autotopup(self) -> AutoTopup:
        return await self._run(self._ops.autotopup())

    async def set_autotopup(
        self,
        enabled: bool,
        *,
        mode: Literal["fixed", "buffer"] | None = None,
        trigger_credits: Decimal | int | str | None = None,
        amount_credits: Decimal | int | str | None = None,
        target_credits: Decimal | int | str | None = None,
        daily_cap_credits: Decimal | int | str | None = None,
        monthly_cap_credits: Decimal | int | str | None = None,
    ) -> AutoTopup:
        return await self._run(self._ops.autotopup_set(_autotopup_settings(locals())))


def _autotopup_settings(arguments: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in arguments.items() if name != "self"}


def _arguments(arguments: dict[str, Any], *left_out: str) -> dict[str, Any]:
    return {name: value for name, value in arguments.items() if name not in ("self", *left_out)}
