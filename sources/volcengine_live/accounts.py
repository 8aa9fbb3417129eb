"""Many accounts in one dataset: each account a ``[sources.volcengine_live.accounts.<name>]``
section (or ``SOURCES__VOLCENGINE_LIVE__ACCOUNTS__<NAME>__...`` environment variables) with
its own credentials and, where it differs, its own endpoint, region or any other setting.

An account's rows carry its name in an ``account`` column and are merged on
``(account, task_id)``: TaskIds are unique within an account only. Each account runs in its
own pipeline (``volcengine_live_<name>``), so its incremental state and its rate limiter are
its own. Without the ``account`` setting nothing changes: no column, key ``task_id``.

>>> from volcengine_live import account_source, configured_accounts
>>> for name in configured_accounts():
...     pipeline = dlt.pipeline(f"volcengine_live_{name}", destination="duckdb",
...                             dataset_name="volcengine_live_dataset")
...     pipeline.run(account_source(name))

Why not dlt's ``volcengine_live_source.clone(name=..., section=...)``: a clone reads
``[sources.<section>.<name>]``, two levels deep, so the accounts could not stay under
``[sources.volcengine_live.accounts.<name>]`` beside the shared settings they fall back to,
and it renames the schema, hence the state, of each account's pipeline. Here an account's
settings are read with dlt's public accessors (``dlt.config``, ``dlt.secrets``) and passed
to the source as arguments, so dlt's own precedence applies: what the call passes, then the
account's section, then ``[sources.volcengine_live]``, then the defaults. The arguments
are gathered here (:func:`account_arguments`); ``account_source`` itself stands beside the
source in ``__init__.py``, so that this module imports nothing above it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from typing import Any

import dlt
from dlt.common.configuration.providers import ConfigProvider
from dlt.common.typing import TSecretStrValue

from .credentials import VolcengineCredentials
from .errors import ConfigurationError
from .settings import SECTION, SETTING_NAMES, where_to_fix

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


def account_arguments(account: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The source's arguments for one configured account (``account_source``): its own
    credentials, its section's settings (``[sources.volcengine_live.accounts.<account>]``),
    ``arguments`` winning over both, and ``account`` set to its checked label.

    Raises:
        ConfigurationError: ``account`` is not a valid name or not configured, or the account
            has no credentials of its own.
    """
    label = check_name(account)
    configured = configured_accounts()
    if label not in configured:
        listed = ", ".join(configured) or "none"
        raise ConfigurationError(
            f"account {label!r} is not configured: there is no [{ACCOUNTS_SECTION}.{label}] "
            f"section. Configured accounts: {listed}."
        )
    values: dict[str, Any] = {}
    for name in SETTING_NAMES:
        value = _account_value(label, name)
        if value is not None:
            values[name] = value
    values.update(arguments)
    if values.get("credentials") is None:
        values["credentials"] = _own_credentials(label)
    values["account"] = label
    return values


def account_section(label: str) -> str:
    """The section that holds one account's own settings."""
    return f"[{ACCOUNTS_SECTION}.{label}]"


def check_own_credentials(account: str, access_key_id: str) -> None:
    """Refuse a configured account signed with other credentials than its own: the shared
    ``[sources.volcengine_live.credentials]`` would load another account's tasks under this
    account's name.

    Raises:
        ConfigurationError: the account is configured and ``access_key_id`` is not its own.
    """
    if account not in configured_accounts():
        return  # a single account with a label: its credentials stay where they are
    sections = (*SECTION.split("."), ACCOUNTS_KEY, account, "credentials")
    own = _lookup(_CREDENTIAL_FIELDS[0], sections)
    if own is None or str(own) != access_key_id:
        raise ConfigurationError(
            f"account {account!r} is configured under [{ACCOUNTS_SECTION}.{account}], but the "
            f"source was given other credentials: build it with account_source({account!r}), "
            "which reads the account's own credentials and settings."
        )


def _account_value(account: str, name: str) -> Any:
    """A setting as the account's section holds it (a TOML value or an environment string,
    checked by the source like any other), or ``None``."""
    return _lookup((name, Any, False), (*SECTION.split("."), ACCOUNTS_KEY, account))


def _own_credentials(account: str) -> VolcengineCredentials:
    """The credentials in the account's own section, and nowhere else.

    Why not dlt's resolution: it falls back to the enclosing sections, so an account without
    credentials would silently sign with ``[sources.volcengine_live.credentials]`` (or the
    SDKs' ``VOLC_ACCESSKEY``) and load another account's tasks under this account's name.
    """
    sections = (*SECTION.split("."), ACCOUNTS_KEY, account, "credentials")
    found: dict[str, Any] = {}
    for field in _CREDENTIAL_FIELDS:
        value = _lookup(field, sections)
        if value is not None:
            found[field[0]] = str(value)
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


def _lookup(field: tuple[str, Any, bool], sections: tuple[str, ...]) -> Any:
    """``field`` (name, type, secret) in exactly ``sections``, from the first provider that
    has it; secrets only from providers that may hold them. Without dlt's fallback to the
    enclosing sections, which is what an account's own value means."""
    name, hint, secret = field
    for provider in _providers():
        if secret and not provider.supports_secrets:
            continue
        value, _ = provider.get_value(name, hint, None, *sections)
        if value is not None:
            return value
    return None


def _providers() -> list[ConfigProvider]:
    """dlt's config providers in lookup order (environment, secrets.toml, config.toml, ...),
    through the public accessor (``dlt.config.config_providers``)."""
    return [p for p in dlt.config.config_providers if not p.is_empty]
