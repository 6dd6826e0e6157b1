"""PSA credentials and webhook secrets are encrypted in the database under a key kept outside it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine, insert, select, text, update
from typer.testing import CliRunner

from mspclaw.cli import config
from mspclaw.cli.app import app
from mspclaw.pipeline.techs import Channel, TechRegistry, TechsFile
from mspclaw.settings import Settings
from mspclaw.store.account_secrets import AccountSecrets
from mspclaw.store.console_logins import SecondFactors
from mspclaw.store.database import Database
from mspclaw.store.jobs import PSAAccounts
from mspclaw.store.secretbox import KEY_FILE, SEALED, SecretBox, SecretKey, SecretKeyError
from mspclaw.store.sso import Provider, Providers
from mspclaw.store.tables import PSAAccountRow
from mspclaw.store.technicians import RosterStore
from mspclaw.wiring import build, open_store, secret_box

if TYPE_CHECKING:
    from tests.store.conftest import TestDatabase

TOKEN = "sk-live-0123456789abcdef-TOKEN"
HOOK = "whsec-fedcba9876543210-HOOK"
SSO_SECRET = "oidc-client-secret-0123456789-SSO"


def raw_rows(engine: Engine) -> list[str]:
    """Every column of every PSA account row as the database hands it over, as text."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM psa_accounts")).all()
    return [json.dumps([str(value) for value in row]) for row in rows]


def test_box_round_trip_and_binds_each_value_to_its_context() -> None:
    box = SecretBox.ephemeral()
    sealed = box.encrypt(TOKEN, context="psa_accounts.secrets of pa_1")
    assert TOKEN not in sealed and sealed.startswith(f"v1:{box.current_id}:")
    assert box.decrypt(sealed, context="psa_accounts.secrets of pa_1") == TOKEN
    assert box.encrypt(TOKEN, context="x") != box.encrypt(TOKEN, context="x")  # a fresh nonce each time
    with pytest.raises(SecretKeyError, match="another row"):
        box.decrypt(sealed, context="psa_accounts.secrets of pa_2")  # copied into another row
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(SecretKeyError, match="changed"):
        box.decrypt(tampered, context="psa_accounts.secrets of pa_1")


def test_a_wrong_key_names_the_key_needed_and_where_it_looked(tmp_path: Path) -> None:
    sealed = SecretBox.ephemeral().encrypt(TOKEN, context="c")
    other = SecretBox.open(key_text=SecretKey.generate().encoded(), key_file=None, data_dir_key_file=tmp_path / "k")
    with pytest.raises(SecretKeyError) as caught:
        other.decrypt(sealed, context="c")
    message = caught.value.message
    assert SecretBox.key_id_of(sealed) in message and "MSPCLAW_SECRET_KEY" in message
    assert "nothing was decrypted or changed" in message and TOKEN not in message


def test_the_data_directory_key_is_created_0600_on_first_use_only(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    box = SecretBox.open(key_text=None, key_file=None, data_dir_key_file=path)
    assert not path.exists()  # nothing encrypted yet: no key written
    with pytest.raises(SecretKeyError, match="does not exist"):  # ciphertext but no key: not a new key
        box.decrypt(SecretBox.ephemeral().encrypt("x", context="c"), context="c")
    assert not path.exists()
    sealed = box.encrypt(TOKEN, context="c")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = SecretBox.open(key_text=None, key_file=None, data_dir_key_file=path)
    assert again.decrypt(sealed, context="c") == TOKEN


def test_keys_from_the_environment_and_a_key_file(tmp_path: Path) -> None:
    new, old = SecretKey.generate(), SecretKey.generate()
    sealed_old = SecretBox([old], origin="t").encrypt(TOKEN, context="c")
    box = SecretBox.open(key_text=f"{new.encoded()}, {old.encoded()}", key_file=None,
                         data_dir_key_file=tmp_path / KEY_FILE)
    assert box.key_ids == [new.id, old.id] and box.key_file is None
    assert box.decrypt(sealed_old, context="c") == TOKEN
    assert SecretBox.key_id_of(box.encrypt("x", context="c")) == new.id  # the first key encrypts
    key_file = tmp_path / "mounted.key"
    key_file.write_text(f"# comment\n{old.encoded()}\n")
    from_file = SecretBox.open(key_text=None, key_file=key_file, data_dir_key_file=tmp_path / KEY_FILE)
    assert from_file.decrypt(sealed_old, context="c") == TOKEN
    with pytest.raises(SecretKeyError, match="does not exist"):
        SecretBox.open(key_text=None, key_file=tmp_path / "absent.key", data_dir_key_file=tmp_path / KEY_FILE)
    with pytest.raises(SecretKeyError, match="32 bytes"):
        SecretBox.open(key_text="not-a-key", key_file=None, data_dir_key_file=tmp_path / KEY_FILE)


def test_the_raw_database_row_holds_no_secret(database: TestDatabase) -> None:
    engine = database.engines[0]
    accounts = PSAAccounts(Database(engine), SecretBox.ephemeral())
    accounts.add("superops", "superops", {"subdomain": "acme"}, {"token": TOKEN, "webhook_secret": HOOK})
    (row,) = raw_rows(engine)
    assert TOKEN not in row and HOOK not in row and SEALED in row
    assert accounts.get("superops").secret_values() == {"token": TOKEN, "webhook_secret": HOOK}


def _settings(tmp_path: Path, database: TestDatabase | None = None, **extra: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", api_key="test-key",
                    database_url=database.url if database else None, **extra)  # type: ignore[arg-type]


def _plaintext_account(settings: Settings) -> None:
    """An account row as an older MSPclaw wrote it: secrets in clear."""
    db, _audit = open_store(settings)
    try:
        with db.engine.begin() as conn:
            conn.execute(insert(PSAAccountRow).values(
                id="pa_old", name="old", kind="local", config={"base_url": "http://127.0.0.1:9"},
                secrets={"token": TOKEN, "webhook_secret": HOOK}, enabled=False))
    finally:
        db.dispose()


def test_rows_in_clear_are_encrypted_on_first_start(tmp_path: Path, database: TestDatabase) -> None:
    settings = _settings(tmp_path, database)
    _plaintext_account(settings)
    assert any(TOKEN in row for row in raw_rows(database.engines[0]))
    services = build(settings)
    try:
        (account,) = services.accounts
        assert account.secret_values() == {"token": TOKEN, "webhook_secret": HOOK}
    finally:
        services.close()
    (row,) = raw_rows(database.engines[0])
    assert TOKEN not in row and HOOK not in row
    assert stat.S_IMODE((settings.data_dir / KEY_FILE).stat().st_mode) == 0o600


def test_a_wrong_key_stops_the_start_and_changes_nothing(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    db, _ = open_store(settings)
    PSAAccounts(db, secret_box(settings)).add("halo", "local", {"base_url": "http://127.0.0.1:9"}, {"token": TOKEN})
    with db.engine.connect() as conn:
        before = conn.execute(select(PSAAccountRow.secrets)).scalar_one()
    key_file = settings.data_dir / KEY_FILE
    original_key = key_file.read_bytes()

    wrong = _settings(tmp_path, secret_key=SecretKey.generate().encoded())
    with pytest.raises(SecretKeyError, match="was encrypted with secret key") as caught:
        build(wrong)
    assert TOKEN not in caught.value.message
    key_file.unlink()  # a lost key file: no new key is made over the old ciphertexts
    with pytest.raises(SecretKeyError, match="does not exist"):
        build(settings)
    assert not key_file.exists()
    with db.engine.connect() as conn:
        assert conn.execute(select(PSAAccountRow.secrets)).scalar_one() == before
    db.dispose()
    key_file.write_bytes(original_key)
    services = build(settings)
    assert services.accounts[0].secret_values() == {"token": TOKEN}
    services.close()


def test_a_wrong_key_writes_nothing_to_either_database(tmp_path: Path, database: TestDatabase) -> None:
    db = Database(database.engines[0])
    right = SecretBox.ephemeral()
    PSAAccounts(db, right).add("a", "local", {}, {"token": TOKEN})
    with db.engine.begin() as conn:  # and one row in clear, as an older MSPclaw wrote it
        conn.execute(insert(PSAAccountRow).values(id="pa_old", name="old", kind="local", config={},
                                                  secrets={"token": HOOK}, enabled=False))
    before = raw_rows(db.engine)
    wrong = AccountSecrets(db, SecretBox.ephemeral())
    for attempt in (wrong.seal_plaintext, wrong.reencrypt, wrong.seal_and_list):
        with pytest.raises(SecretKeyError, match="nothing was decrypted or changed"):
            attempt()
    assert raw_rows(db.engine) == before  # not even the row in clear was encrypted under the wrong key
    assert AccountSecrets(db, right).seal_plaintext() == 1


def test_a_changed_ciphertext_is_refused_whole(tmp_path: Path, database: TestDatabase) -> None:
    settings = _settings(tmp_path, database)
    db, _ = open_store(settings)
    try:
        accounts = PSAAccounts(db, secret_box(settings))
        added = accounts.add("a", "local", {}, {"token": TOKEN})
        other = accounts.add("b", "local", {}, {"token": "second"})
        with db.engine.begin() as conn:  # b's ciphertext copied into a's row
            sealed_b = conn.execute(select(PSAAccountRow.secrets).where(PSAAccountRow.id == other.id)).scalar_one()
            conn.execute(update(PSAAccountRow).where(PSAAccountRow.id == added.id).values(secrets=sealed_b))
        with pytest.raises(SecretKeyError, match="belongs to another row"):
            accounts.list()
        with pytest.raises(SecretKeyError):
            AccountSecrets(db, secret_box(settings)).reencrypt()
    finally:
        db.dispose()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("MSPCLAW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MSPCLAW_API_KEY", "test-key")
    monkeypatch.setattr(config, "_overrides", {})
    return CliRunner()


def test_rotate_re_encrypts_everything_under_a_new_key(tmp_path: Path, database: TestDatabase, cli: CliRunner,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSPCLAW_DATABASE_URL", database.url)
    settings = _settings(tmp_path, database)
    db, _ = open_store(settings)
    PSAAccounts(db, secret_box(settings)).add("one", "local", {}, {"token": TOKEN})
    PSAAccounts(db, secret_box(settings)).add("two", "local", {}, {"token": HOOK})
    SecondFactors(db, secret_box(settings)).begin("tech@example.com", "JBSWY3DPEHPK3PXP")
    Providers(db, secret_box(settings)).add(Provider("entra", "Entra ID", "https://login.example/t/v2.0", "app-id",
                                                     SSO_SECRET, ("msp.example",)))
    TechRegistry(RosterStore(db, secret_box(settings))).replace_all(TechsFile(channels=[
        Channel(name="ops", kind="slack", url=f"https://hooks.example.invalid/{HOOK}")]))
    db.dispose()
    old_id = secret_box(settings).current_id
    assert old_id is not None

    result = cli.invoke(app, ["secrets", "rotate"])
    assert result.exit_code == 0, result.output
    assert ("1 second factor(s), 1 single sign-on provider(s) and 1 notification channel(s)"
            in result.output), result.output
    box = secret_box(settings)
    assert box.key_ids != [old_id] and len(box.key_ids) == 1  # the old key is gone from the file
    assert old_id not in (settings.data_dir / KEY_FILE).read_text()
    for row in raw_rows(database.engines[0]):
        assert f"v1:{box.current_id}:" in row and TOKEN not in row
    status = cli.invoke(app, ["secrets", "status", "--json"])
    assert json.loads(status.output)["accounts_by_key"] == {box.current_id: 2}
    db, _ = open_store(settings)
    try:
        assert {a.name: a.secret_values()["token"] for a in PSAAccounts(db, box).list()} == {"one": TOKEN,
                                                                                              "two": HOOK}
        # a technician's TOTP secret was sealed again too, or they could not sign in once the old key is gone
        assert SecondFactors(db, box).secret("tech@example.com") == "JBSWY3DPEHPK3PXP"
        assert Providers(db, box).get("entra").client_secret == SSO_SECRET  # single sign-on keeps working
        channel = TechRegistry(RosterStore(db, box)).load().channels[0]  # and the roster's Slack channel
        assert channel.url == f"https://hooks.example.invalid/{HOOK}"
        with db.engine.connect() as conn:
            sealed = conn.execute(text("SELECT url FROM notification_channels")).scalar_one()
        assert sealed.startswith(f"v1:{box.current_id}:") and HOOK not in sealed
    finally:
        db.dispose()


def test_rotate_with_a_wrong_key_changes_nothing(tmp_path: Path, cli: CliRunner,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path)
    db, _ = open_store(settings)
    PSAAccounts(db, secret_box(settings)).add("one", "local", {}, {"token": TOKEN})
    db.dispose()
    key_file = settings.data_dir / KEY_FILE
    (settings.data_dir / "good.key").write_bytes(key_file.read_bytes())
    key_file.write_text(SecretKey.generate().encoded() + "\n")
    wrong_key = key_file.read_bytes()
    db = Database.open(settings.resolved_database_url())
    before = raw_rows(db.engine)
    result = cli.invoke(app, ["secrets", "rotate"])
    assert result.exit_code == 1 and isinstance(result.exception, SecretKeyError)
    assert key_file.read_bytes() == wrong_key  # no key written, nothing re-encrypted
    assert raw_rows(db.engine) == before
    db.dispose()


def test_rotate_with_environment_keys_uses_the_first(tmp_path: Path, database: TestDatabase, cli: CliRunner,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = SecretKey.generate(), SecretKey.generate()
    settings = _settings(tmp_path, database, secret_key=old.encoded())
    db, _ = open_store(settings)
    PSAAccounts(db, secret_box(settings)).add("one", "local", {}, {"token": TOKEN})
    db.dispose()
    monkeypatch.setenv("MSPCLAW_DATABASE_URL", database.url)
    monkeypatch.setenv("MSPCLAW_SECRET_KEY", f"{new.encoded()},{old.encoded()}")
    result = cli.invoke(app, ["secrets", "rotate"])
    assert result.exit_code == 0, result.output
    assert "remove the old key" in result.output
    (row,) = raw_rows(database.engines[0])
    assert f"v1:{new.id}:" in row
    assert not (settings.data_dir / KEY_FILE).exists()


def test_data_directory_and_database_file_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        services = build(_settings(tmp_path))
        services.close()
    finally:
        os.umask(old)
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "mspclaw.db").stat().st_mode) == 0o600
    for sidecar in ("mspclaw.db-wal", "mspclaw.db-shm"):
        if (data / sidecar).exists():
            assert stat.S_IMODE((data / sidecar).stat().st_mode) == 0o600


def test_a_database_file_left_readable_by_an_older_version_is_narrowed(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    build(settings).close()
    db_file = settings.data_dir / "mspclaw.db"
    db_file.chmod(0o644)  # as an older MSPclaw created it
    build(settings).close()
    assert stat.S_IMODE(db_file.stat().st_mode) == 0o600


def test_a_replica_started_before_the_key_file_existed_reads_it_when_it_meets_its_key(tmp_path: Path) -> None:
    """Replicas sharing a data directory: the first to store a secret makes the key file; one that opened its box
    before that reads the file again when it meets the unknown key id, and then encrypts under the same key."""
    key_file = tmp_path / KEY_FILE
    early = SecretBox.open(key_text=None, key_file=None, data_dir_key_file=key_file)
    later = SecretBox.open(key_text=None, key_file=None, data_dir_key_file=key_file)
    assert early.key_ids == [] and not key_file.exists()
    sealed = later.encrypt(TOKEN, context="psa_accounts.secrets of pa_1")
    assert early.decrypt(sealed, context="psa_accounts.secrets of pa_1") == TOKEN
    assert early.key_ids == later.key_ids
    assert later.decrypt(early.encrypt(HOOK, context="c"), context="c") == HOOK
    other = SecretBox.ephemeral().encrypt(TOKEN, context="c")  # a key no file holds: still refused clearly
    with pytest.raises(SecretKeyError, match="was encrypted with secret key"):
        early.decrypt(other, context="c")
