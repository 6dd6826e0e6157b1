"""The console's stored second factor (SQLite and PostgreSQL): sealed under the secret box, codes accepted
once, recovery codes spent once, re-sealed on key rotation, reset for a technician who lost their phone."""

from __future__ import annotations

from sqlalchemy import Engine

from mspclaw.store.console_logins import SecondFactors, recovery_digest
from mspclaw.store.database import Database
from mspclaw.store.secretbox import SecretBox, SecretKey
from mspclaw.store.tables import TechSecondFactor


def test_second_factor_rows(engine: Engine) -> None:
    db = Database(engine)
    old = SecretKey.generate()
    box = SecretBox([old], origin="test")
    factors = SecondFactors(db, box)
    factors.begin("Dana@msp.example", "JBSWY3DPEHPK3PXP")
    assert not factors.confirmed("dana@msp.example")
    assert factors.secret("dana@msp.example") == "JBSWY3DPEHPK3PXP"
    assert factors.accept_step("dana@msp.example", 100, confirm_with=[recovery_digest("abcde-12345")])
    assert factors.confirmed("dana@msp.example")
    assert not factors.accept_step("dana@msp.example", 100)  # the same step twice
    assert not factors.accept_step("dana@msp.example", 99)  # an older one
    assert factors.accept_step("dana@msp.example", 101)
    assert factors.spend_recovery("dana@msp.example", "ABCDE-12345")
    assert not factors.spend_recovery("dana@msp.example", "abcde-12345")
    assert factors.recovery_left("dana@msp.example") == 0

    # rotation: sealed again under the new first key, still the same secret, the old key no longer needed
    new = SecretKey.generate()
    assert SecondFactors(db, SecretBox([new, old], origin="test")).reencrypt() == 1
    assert SecondFactors(db, SecretBox([new], origin="test")).secret("dana@msp.example") == "JBSWY3DPEHPK3PXP"
    with db.sessions() as s:
        row = s.get(TechSecondFactor, "dana@msp.example")
        assert row is not None and SecretBox.key_id_of(row.secret) == new.id

    assert factors.reset("dana@msp.example") and not factors.confirmed("dana@msp.example")
    assert not factors.reset("dana@msp.example")
