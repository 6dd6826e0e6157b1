"""Secrets as users, tools and models write them, and ordinary ticket text that must survive.

:data:`SECRETS` is the corpus the redaction is held to at every sink (``tests/store/test_redact.py``
and ``tests/api/test_secret_corpus.py``): each entry is the text as it would arrive and the
secret values that must not be found anywhere afterwards. The values are fake but have the real
shapes (lengths, alphabets, prefixes). :data:`ORDINARY` is ticket text with host names, error
codes, KB numbers and versions, which must come out unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Secret:
    name: str
    text: str
    values: tuple[str, ...]


_PEM_BODY = ("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
             "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
             "NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ")
_AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEK1"
_AZURE_KEY = ("Xq3v9Lk2Jd8Rt5Nw1Bz7Hc4Mf6Gp0Sy2Ue9Vi3Ko5Lm7Nj1Qa8Wr4Ts6Yx2Zb0Cd3Ef5Gh7Ij9Kl1Mn3Op5Qr7St9Uv1Wx3Yz5Ab"
              "Cd1Ef2Gh3I+/==")[-88:]
_JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ0ZWNoQGFjbWUuZXhhbXBsZSIsImV4cCI6MTg5MzQ1NjAwMH0"
        ".Q2x5T3pVYk5mV0ZkX2xSa0VqZ3dUeW9HQ1Z2b0pxWk0")
_GCP_JSON = ('{"type": "service_account", "project_id": "acme-prod", "private_key_id": '
             '"4f1c2e9a7b3d5f6e8a0b1c2d3e4f5a6b7c8d9e0f", "private_key": "-----BEGIN PRIVATE KEY-----\\n'
             + _PEM_BODY.replace("\n", "\\n") + '\\n-----END PRIVATE KEY-----\\n", "client_email": '
             '"svc@acme-prod.iam.gserviceaccount.com"}')

SECRETS: tuple[Secret, ...] = (
    # cloud keys, by label and by shape
    Secret("aws access key id (bare)", "the script uses AKIAZ7QX4LMN2PRS5TUV and fails", ("AKIAZ7QX4LMN2PRS5TUV",)),
    Secret("aws secret (label)", f"aws_secret_access_key = {_AWS_SECRET}", (_AWS_SECRET,)),
    Secret("aws secret (bare)", f"backup job creds: AKIAZ7QX4LMN2PRS5TUW {_AWS_SECRET[::-1]}",
           ("AKIAZ7QX4LMN2PRS5TUW", _AWS_SECRET[::-1])),
    Secret("aws temporary key id", "sts gave ASIAY34FZKBOKMUTVV7A for the session", ("ASIAY34FZKBOKMUTVV7A",)),
    Secret("azure storage connection string",
           "DefaultEndpointsProtocol=https;AccountName=acmebackup;AccountKey=" + _AZURE_KEY
           + ";EndpointSuffix=core.windows.net", (_AZURE_KEY,)),
    Secret("azure storage key (bare)", f"key1 is\n{_AZURE_KEY[::-1][2:]}==\nplease rotate", (_AZURE_KEY[::-1][2:],)),
    Secret("azure sas url", "https://acme.blob.core.windows.net/x?sv=2022-11-02&ss=b&sig=Zk9Tq1%2BVb7Lm3Xy5Wp0Rn8&se=2027",
           ("Zk9Tq1%2BVb7Lm3Xy5Wp0Rn8",)),
    Secret("gcp service account json", _GCP_JSON,
           ("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj",
            "4f1c2e9a7b3d5f6e8a0b1c2d3e4f5a6b7c8d9e0f")),
    Secret("pem private key", f"here is the key:\n-----BEGIN RSA PRIVATE KEY-----\n{_PEM_BODY}\n"
           "-----END RSA PRIVATE KEY-----\nthanks",
           ("MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu",)),
    Secret("openssh private key, no end line", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5v"
           "bmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n", ("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ",)),
    # labels in many languages
    Secret("password:", "Username: jdoe\nPassword: Winter2026!", ("Winter2026!",)),
    Secret("pass:", "VPN login is jdoe pass: Kx9#mQ2v", ("Kx9#mQ2v",)),
    Secret("pw:", "wifi guest pw: Gast-8812-WLAN", ("Gast-8812-WLAN",)),
    Secret("pwd=", "net use Z: \\\\fs01\\share /user:acme\\jdoe pwd=Tr0ub4dor&3x", ("Tr0ub4dor&3x",)),
    Secret("passwort=", "Zugang: benutzer=mmueller passwort=Sommer#2026", ("Sommer#2026",)),
    Secret("Kennwort:", "Ihr neues Kennwort: Hx7-Lp2q-Zz", ("Hx7-Lp2q-Zz",)),
    Secret("mot de passe:", "identifiant: cdupont mot de passe: Soleil!2026", ("Soleil!2026",)),
    Secret("contraseña:", "usuario: jgarcia contraseña: Verano_2026", ("Verano_2026",)),
    Secret("wachtwoord:", "gebruiker pjansen wachtwoord: Tulp2026!x", ("Tulp2026!x",)),
    Secret("senha:", "login: asilva senha: Praia@2026", ("Praia@2026",)),
    Secret("quoted with spaces", 'the new password is "correct horse battery staple"',
           ("correct horse battery staple",)),
    Secret("json password", '{"username": "svc-backup", "password": "B@ckup 2026 ok"}', ("B@ckup 2026 ok",)),
    Secret("yaml secret", "smtp:\n  user: alerts\n  secret: 'Mail-Relay-77#'\n", ("Mail-Relay-77#",)),
    Secret("client secret", "app registration client_secret=Q~8xZ.fT3kLm9-PqR2sV5wY_bN6cD1eF4gH7", (
        "Q~8xZ.fT3kLm9-PqR2sV5wY_bN6cD1eF4gH7",)),
    # prose
    Secret("my password is", "I can't log in, my password is Hunter2Hunter2 and it worked yesterday",
           ("Hunter2Hunter2",)),
    Secret("mein Passwort ist", "Hallo, mein Passwort ist Fruehling2026 aber Outlook fragt immer wieder",
           ("Fruehling2026",)),
    Secret("password for the VPN is", "the password for the VPN is Vp9!northgate, please check",
           ("Vp9!northgate",)),
    Secret("mon mot de passe est", "mon mot de passe est Bonjour2026 depuis lundi", ("Bonjour2026",)),
    Secret("password was changed to", "password was changed to Qw3rty!Qw3rty by the helpdesk",
           ("Qw3rty!Qw3rty",)),
    # PINs and codes
    # (a short PIN is looked for with its label: four digits alone turn up in any hash or id)
    Secret("PIN", "my phone PIN 4821 is not accepted", ("PIN 4821", "4821 is not")),
    Secret("PIN is", "Die PIN ist 907213 laut Brief", ("ist 907213", "907213 laut")),
    Secret("bitlocker recovery key", "BitLocker recovery key: 123456-654321-111222-333444-555666-777888-999000-121212",
           ("123456-654321-111222-333444-555666-777888-999000-121212",)),
    Secret("mfa backup code", "MFA backup code: 8842-1937", ("8842-1937",)),
    # bare tokens
    Secret("github classic pat", "git clone https://github.com/acme/app using ghp_R4nd0mT0k3nV4lu3Abc123Def456Ghi789xy",
           ("ghp_R4nd0mT0k3nV4lu3Abc123Def456Ghi789xy",)),
    Secret("github fine-grained pat",
           "token github_pat_11ABCDEFG0abcdefghijkl_MNOPQRSTuvwxyz0123456789ABCDEFGHIJKLmnop",
           ("github_pat_11ABCDEFG0abcdefghijkl_MNOPQRSTuvwxyz0123456789ABCDEFGHIJKLmnop",)),
    Secret("slack bot token", "bot uses xoxb-2048571236-4096183625-Ab3Cd5Ef7Gh9Ij1Kl3Mn5Op7",
           ("xoxb-2048571236-4096183625-Ab3Cd5Ef7Gh9Ij1Kl3Mn5Op7",)),
    Secret("slack webhook", "alerts go to https://hooks.slack.com/services/T0ACME123/B0ACME456/Xy7Zq9Wm2Lp4Rt6Vn8Bk0Jd",
           ("T0ACME123/B0ACME456/Xy7Zq9Wm2Lp4Rt6Vn8Bk0Jd",)),
    Secret("jwt", f"the portal cookie was {_JWT}", (_JWT.split(".")[1], _JWT.split(".")[2])),
    Secret("bearer header", "curl -H 'Authorization: Bearer Zm9vYmFyLXRva2VuLTIwMjY' https://api.acme.example",
           ("Zm9vYmFyLXRva2VuLTIwMjY",)),
    Secret("basic auth url", "mount https://backup:Ns8!vault@nas.acme.local/share", ("Ns8!vault",)),
    Secret("openai key", "our bot key sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78", (
        "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78",)),
    Secret("stripe key", "billing uses sk_live_51Hx9Ab2Cd3Ef4Gh5Ij6Kl7Mn", ("sk_live_51Hx9Ab2Cd3Ef4Gh5Ij6Kl7Mn",)),
    # MSPclaw's own credentials
    Secret("mspclaw named api key", "use mck_3fa94c0b12de_Xk4Lm9Pq2Rs7Tv1Wz8Yb3Cd6Ef0Gh5Ij2Kl9Mn4Op7Q for the script",
           ("Xk4Lm9Pq2Rs7Tv1Wz8Yb3Cd6Ef0Gh5Ij2Kl9Mn4Op7Q",)),
    Secret("mspclaw admin api key", "MSPCLAW_API_KEY was msp_Qm3Zx8Lk2Vb7Nw1Rt5Yp9Hc4Jd6Gf0Sa2Ue8Io3Kl7",
           ("msp_Qm3Zx8Lk2Vb7Nw1Rt5Yp9Hc4Jd6Gf0Sa2Ue8Io3Kl7",)),
    Secret("mspclaw test key", "key test_Zp4Kx9Lm2Qr7Vt1Wb8Yc3D in the env", ("test_Zp4Kx9Lm2Qr7Vt1Wb8Yc3D",)),
    Secret("mspclaw enrollment code", "enroll the laptop with enr_Ab3Cd5Ef7Gh9Ij1Kl3Mn5Op7Qr9St1Uv",
           ("enr_Ab3Cd5Ef7Gh9Ij1Kl3Mn5Op7Qr9St1Uv",)),
)

ORDINARY: tuple[str, ...] = (
    "Outlook on WS-ACME-042 crashes with error 0x80070005 since KB5034441 was installed.",
    "Server SRV-DC01.acme.local (Windows Server 2022, build 20348.2227) rebooted at 03:12.",
    "Printer HP LaserJet M404dn at 10.0.12.45 shows 'PCL XL error' on every job.",
    "Chrome 121.0.6167.85 cannot open https://intranet.acme.local/kb/article/12345 - ERR_CERT_DATE_INVALID.",
    "My password is not working since this morning, I think it expired.",
    "Password reset for alice@acme.example please, she is locked out.",
    "Mein Passwort ist abgelaufen und ich komme nicht mehr ins VPN.",
    "The disk on /dev/sda1 is 98% full; event ID 2013 in the System log.",
    "Teams version 24004.1403.2634.2418 keeps asking me to sign in again.",
    "Update KB5034765 failed with 0x800f0922 on LAPTOP-7QK2M.",
    "Please install Adobe Acrobat Reader DC 2023.008.20470 on PC-FRONTDESK-01.",
    "VPN client FortiClient 7.2.3.0929 says 'Credential or ssoToken is invalid'.",
    "User jdoe reports that the token expired message appears in SAP GUI 7.70.",
    "The API key field in the Sage integration is empty after the upgrade to 2024.1.",
    "Backup job 'Nightly-SQL' on srv-bkp-02 failed: code 1603, see log C:\\ProgramData\\Veeam\\Backup\\Job.log.",
    "Commit 3f2a9c1d8e7b6a5f4c3d2e1f0a9b8c7d6e5f4a3b broke the login page on staging.",
    "SHA256 of the installer: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08.",
    "Ticket #48213: the PIN pad at till 3 does not respond.",
    "Bypass the proxy for *.acme.local; design team needs it by Friday.",
    "The pass-through authentication agent on SRV-AAD01 is in state 'inactive'.",
    "Remote Desktop to 192.168.1.20:3389 fails with error code 0x204.",
    "GUID of the GPO is {31B2F340-016D-11D2-945F-00C04FB984F9}.",
    "Excel shows #REF! in column D after the Office 16.0.17126.20132 update.",
    "She forgot her password again, can you send a reset link to her phone?",
    "The secret santa list is on the shared drive under HR/2026.",
    "Our Wi-Fi password is on the sticker on the router, but the sticker is gone.",
    "Mailbox quota for j.smith@acme.example is 49.5 GB of 50 GB.",
    "The barcode scanner Zebra DS2208 firmware PAACYS00-001-R08 is not recognised.",
    "Please whitelist mail from notifications@github.com and noreply@slack.com.",
    "ssh to admin@fw01.acme.local port 22 times out since the change CHG0034127.",
)
