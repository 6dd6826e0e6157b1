"""Show a temporary password or access pass to the user of this device, and to no one else.

A dialog the user dismisses: ``zenity --text-info`` on a Linux desktop, ``osascript`` on macOS, a
Windows Forms message box hosted by PowerShell on Windows. The secret never appears on a command
line (where ``ps`` would show it to every local user) or in a log: each program reads the text,
or the script holding it, from its standard input.

Returns ``True`` when the dialog was shown and closed by the user, ``False`` when there is no
desktop to show it on or the program failed; the server then falls back to a view-once link.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

from mspclaw.protocol.frames import ShowSecret

DIALOG_TIMEOUT_S = 600


@dataclass(frozen=True)
class DialogCommand:
    argv: list[str]
    stdin: str

    def __repr__(self) -> str:  # the stdin holds the secret
        return f"DialogCommand(argv={self.argv!r}, stdin=<{len(self.stdin)} chars>)"


def secret_text(frame: ShowSecret) -> str:
    """What the dialog says: the server's explanation, the account, the secret, and what to do with it."""
    secret = frame.secret
    what = "Temporary password" if secret.type == "temporary_password" else "Temporary Access Pass"
    lines = [frame.text, "", f"Account: {secret.account}", f"{what}: {secret.value}", ""]
    if secret.must_change:
        lines.append("You will be asked to choose a new password as soon as you sign in with it.")
    lines.append("Nobody else can see this, and MSPclaw keeps no copy. Close this window when you have used it.")
    return "\n".join(lines)


def dialog_command(frame: ShowSecret, platform: str = sys.platform) -> DialogCommand | None:
    """The program to run for ``platform``, or ``None`` when this machine has no way to show a dialog."""
    text = secret_text(frame)
    if platform == "win32":
        powershell = shutil.which("powershell") or shutil.which("pwsh")
        if powershell is None:
            return None
        script = ("Add-Type -AssemblyName System.Windows.Forms; "
                  f"[void][System.Windows.Forms.MessageBox]::Show({_ps_quote(text)}, 'MSPclaw', 'OK', 'Information')")
        return DialogCommand([powershell, "-NoProfile", "-NonInteractive", "-Command", "-"], script)
    if platform == "darwin":
        osascript = shutil.which("osascript")
        if osascript is None:
            return None
        script = (f"display dialog {_applescript_quote(text)} with title \"MSPclaw\" buttons {{\"Done\"}} "
                  f"default button \"Done\" giving up after {DIALOG_TIMEOUT_S}")
        return DialogCommand([osascript, "-"], script)
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return None
    zenity = shutil.which("zenity")
    if zenity is None:
        return None
    return DialogCommand([zenity, "--text-info", "--title=MSPclaw", "--width=520", "--height=300",
                          f"--timeout={DIALOG_TIMEOUT_S}"], text)


def show_secret_dialog(frame: ShowSecret) -> bool:
    """Run the dialog and wait for the user to close it (blocking: call it from a thread)."""
    command = dialog_command(frame)
    if command is None:
        return False
    try:
        done = subprocess.run(command.argv, input=command.stdin, capture_output=True, text=True,
                              timeout=DIALOG_TIMEOUT_S + 10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


async def desktop_secret(frame: ShowSecret) -> bool:
    return await asyncio.to_thread(show_secret_dialog, frame)


def _ps_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _applescript_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
