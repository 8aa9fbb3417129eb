"""Many accounts in one dataset: each account a ``[sources.volcengine_live.accounts.<name>]``
section (or ``SOURCES__VOLCENGINE_LIVE__ACCOUNTS__<NAME>__...`` environment variables) with
its own credentials and, where it differs, its own endpoint, region or any other setting.

An account's rows carry its name in an ``account`` column and are merged on
``(account, task_id)``: TaskIds are unique within an account only. Each account runs in its
own pipeline (``volcengine_live_<name>``), so its incremental state and its rate limiter are
its own. Without the ``account`` setting nothing changes: no column, key ``task_id``.

>>> from volcengine_live import configured_accounts, volcengine_live_source
>>> for name in configured_accounts():
...     pipeline = dlt.pipeline(f"volcengine_live_{name}", destination="duckdb",
...                             dataset_name="volcengine_live_dataset")
...     pipeline.run(volcengine_live_source(account=name))
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from typing import Any

from dlt.common.configuration import resolve_configuration
from dlt.common.configuration.container import Container
from dlt.common.configuration.providers import ConfigProvider
from dlt.common.configuration.specs import BaseConfiguration
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext
from dlt.common.typing import TSecretStrValue

from .credentials import VolcengineCredentials
from .errors import ConfigurationError
from .settings import SECTION, where_to_fix

ACCOUNTS_KEY = "accounts"
ACCOUNTS_SECTION = f"{SECTION}.{ACCOUNTS_KEY}"
ACCOUNT_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
"""Lowercase, so that a TOML section and an environment variable name the same account, and
usable in a pipeline name (``volcengine_live_<name>``)."""
DEFAULT_ACCOUNT = "default"
"""What the orchestrator examples call the one account of a single-account setup."""
RESERVED_NAMES = frozenset({DEFAULT_ACCOUNT})
STATE_ACCOUNT = "account"
"""Key in the resource state: the account whose state it is."""

_CREDENTIAL_FIELDS: tuple[tuple[str, Any, bool], ...] = (
    ("access_key_id", str, False),
    ("secret_access_key", TSecretStrValue, True),
    ("session_token", TSecretStrValue, True),
)
"""Name, type and whether it is a secret (only providers of secrets may hold those)."""


def configured_accounts() -> list[str]:
    """The names of the configured accounts, sorted; ``[]`` when there are none.

    Raises:
        ConfigurationError: a name that is not a valid account label.
    """
    names: set[str] = set()
    for provider in _providers():
        value, _ = provider.get_value(ACCOUNTS_KEY, Any, None, *SECTION.split("."))
        names.update(_names_in(value))
    # dlt's environment provider looks keys up, it cannot list them: an account given only as
    # SOURCES__VOLCENGINE_LIVE__ACCOUNTS__<NAME>__... variables is found by its prefix.
    prefix = ACCOUNTS_SECTION.upper().replace(".", "__") + "__"
    names.update(
        key[len(prefix) :].split("__", 1)[0].lower()
        for key in os.environ
        if key.startswith(prefix) and "__" in key[len(prefix) :]
    )
    for name in names:
        check_name(name)
    return sorted(names)


def pipeline_name(account: str | None, base: str = "volcengine_live") -> str:
    """The dlt pipeline, hence the incremental state, of one account: ``<base>_<account>``;
    a single-account setup (no label, or the orchestrators' ``default``) keeps ``base``, so
    that its state carries on."""
    return base if account in (None, DEFAULT_ACCOUNT) else f"{base}_{account}"


def _names_in(value: Any) -> set[str]:
    """Account names in a provider's value: a TOML table, or a JSON object (environment)."""
    if isinstance(value, str) and value.strip():
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigurationError(
                f"{ACCOUNTS_SECTION} is not a table of accounts: {value[:40]!r}. "
                + where_to_fix(ACCOUNTS_KEY)
            ) from None
    return {str(name) for name in value} if isinstance(value, Mapping) else set()


def check_name(value: Any) -> str:
    """An account label as given, or :class:`ConfigurationError` naming the setting."""
    if not isinstance(value, str) or not ACCOUNT_NAME.fullmatch(value):
        raise ConfigurationError(
            f"account {value!r} is not a valid account name: lowercase letters, digits and "
            f"underscores, starting with a letter, at most 40. {where_to_fix('account')} "
            f"(or rename the [{ACCOUNTS_SECTION}.<name>] section)."
        )
    if value in RESERVED_NAMES:
        raise ConfigurationError(
            f"account {value!r} is reserved for the single-account setup: give the account "
            f"another name. {where_to_fix('account')}"
        )
    return value


def account_values(
    account: str, spec: type[BaseConfiguration], explicit: Mapping[str, Any]
) -> dict[str, Any]:
    """The source's arguments for ``account``, resolved by dlt under
    ``sources.volcengine_live.accounts.<account>``; what the call passed wins, and a setting
    the account's section lacks comes from ``[sources.volcengine_live]`` (dlt's own fallback
    to the enclosing section), except the credentials: they must be the account's own.

    Raises:
        ConfigurationError: accounts are configured and ``account`` is not one of them, or
            the account has no credentials of its own.
    """
    configured = configured_accounts()
    if account not in configured:
        if not configured:  # a single account with a label: its settings stay where they are
            return {}
        raise ConfigurationError(
            f"account {account!r} is not configured: there is no [{ACCOUNTS_SECTION}."
            f"{account}] section. Configured accounts: {', '.join(configured)}."
        )
    given = dict(explicit)
    given["account"] = account
    if given.get("credentials") is None:
        given["credentials"] = _own_credentials(account)
    sections = (*SECTION.split("."), ACCOUNTS_KEY, account)
    resolved = resolve_configuration(spec(), sections=sections, explicit_value=given)
    return dict(resolved)


def _own_credentials(account: str) -> VolcengineCredentials:
    """The credentials in the account's own section, and nowhere else.

    Why not dlt's resolution: it falls back to the enclosing sections, so an account without
    credentials would silently sign with ``[sources.volcengine_live.credentials]`` (or the
    SDKs' ``VOLC_ACCESSKEY``) and load another account's tasks under this account's name.
    """
    sections = (*SECTION.split("."), ACCOUNTS_KEY, account, "credentials")
    found: dict[str, Any] = {}
    for field, hint, secret in _CREDENTIAL_FIELDS:
        for provider in _providers():
            if secret and not provider.supports_secrets:
                continue
            value, _ = provider.get_value(field, hint, None, *sections)
            if value is not None:
                found[field] = str(value)
                break
    if not found.get("access_key_id") or not found.get("secret_access_key"):
        where = f"{ACCOUNTS_SECTION}.{account}.credentials"
        variable = where.upper().replace(".", "__")
        raise ConfigurationError(
            f"account {account!r} has no credentials of its own: set access_key_id and "
            f"secret_access_key under [{where}] in .dlt/secrets.toml, or the environment "
            f"variables {variable}__ACCESS_KEY_ID and {variable}__SECRET_ACCESS_KEY."
        )
    credentials = VolcengineCredentials(**found)
    credentials.resolve()  # complete as found: on_resolved's SDK fallback does not apply
    return credentials


def claim_state(state: MutableMapping[str, Any], account: str | None) -> None:
    """Refuse a resource state left by another account (or by the unlabelled setup): one
    pipeline per account, else one account's cursor would skip another's tasks."""
    owner = state.get(STATE_ACCOUNT)
    if owner == account or (owner is None and not state):
        return
    raise ConfigurationError(
        f"this pipeline's state belongs to {_whose(owner)}, not to {_whose(account)}: run "
        "each account in its own pipeline (volcengine_live_<account>), or see "
        "docs/accounts.md on moving from one account to many."
    )


def _whose(account: str | None) -> str:
    return f"account {account!r}" if account else "the single account without a label"


def mark_state(state: MutableMapping[str, Any], account: str | None) -> None:
    if account is not None:
        state[STATE_ACCOUNT] = account


def _providers() -> list[ConfigProvider]:
    """dlt's config providers in lookup order (environment, secrets.toml, config.toml, ...)."""
    providers = Container()[PluggableRunContext].providers.providers
    return [p for p in providers if not p.is_empty]
