<#
.SYNOPSIS
    Installs (or upgrades) the MSPclaw agent as the Windows service "MSPclawAgent".

.DESCRIPTION
    Meant to be pushed by the MSP's RMM tool, run as SYSTEM or an administrator, with the single-file
    agent mspclaw-agent.exe shipped next to this script: nothing is downloaded, no code is built at run
    time (no Invoke-Expression, no encoded commands), so the script can be signed and run under the
    AllSigned execution policy.

    It copies mspclaw-agent.exe to "$env:ProgramFiles\MSPclaw", makes the state folder
    "$env:ProgramData\mspclaw-agent" private to SYSTEM and the Administrators, enrolls once with the
    code printed by `mspclaw enroll CLIENT` on the server, writes service.json (the server's URL), and
    installs and starts the service (automatic start; restarted 10 s, 30 s and 60 s after a failure).
    Run again without -EnrollmentCode to upgrade the binary in place.

    Exit codes: 0 installed and running; 1 installation or enrollment failed; 2 usage error (not an
    administrator, not enrolled).

.PARAMETER ServerUrl
    The MSPclaw server's URL, e.g. https://msp.example:8700.

.PARAMETER EnrollmentCode
    The single-use enrollment code from `mspclaw enroll CLIENT`. Needed on the first install only.

.PARAMETER SourceDir
    Where mspclaw-agent.exe is; default: the folder of this script.

.EXAMPLE
    powershell.exe -NoProfile -ExecutionPolicy AllSigned -File Install-MSPclawAgent.ps1 -ServerUrl https://msp.example:8700 -EnrollmentCode enr_7Q2K9XPD
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [ValidatePattern('^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?/?$')]
    [string] $ServerUrl,

    [Parameter(Mandatory = $false)]
    [ValidatePattern('^[A-Za-z0-9_\-]{4,128}$')]
    [string] $EnrollmentCode = '',

    [Parameter(Mandatory = $false)]
    [string] $SourceDir = $PSScriptRoot
)

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'

$ServiceName = 'MSPclawAgent'
$InstallDir = Join-Path $env:ProgramFiles 'MSPclaw'
$Exe = Join-Path $InstallDir 'mspclaw-agent.exe'
$StateDir = Join-Path $env:ProgramData 'mspclaw-agent'
$AgentJson = Join-Path $StateDir 'agent.json'
# LocalSystem and the built-in Administrators group, by SID: the same in every Windows language
$PrivateAcl = @('/inheritance:r', '/grant:r', '*S-1-5-18:(OI)(CI)F', '/grant:r', '*S-1-5-32-544:(OI)(CI)F')

$identity = [Security.Principal.WindowsIdentity]::GetCurrent()
$principal = New-Object Security.Principal.WindowsPrincipal($identity)
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Write-Error 'Run this script as SYSTEM or an administrator.' -ErrorAction Continue
    exit 2
}

$source = Join-Path $SourceDir 'mspclaw-agent.exe'
if (-not (Test-Path -LiteralPath $source -PathType Leaf)) {
    Write-Error "mspclaw-agent.exe is not next to this script (looked in $SourceDir)." -ErrorAction Continue
    exit 1
}

$existing = Get-Service -Name $ServiceName -ErrorAction SilentlyContinue
if ($null -ne $existing -and $existing.Status -ne 'Stopped') {
    Stop-Service -Name $ServiceName -Force
    $existing.WaitForStatus('Stopped', [TimeSpan]::FromSeconds(30))
}

New-Item -ItemType Directory -Force -Path $InstallDir | Out-Null
Copy-Item -LiteralPath $source -Destination $Exe -Force

New-Item -ItemType Directory -Force -Path $StateDir | Out-Null
& icacls.exe $StateDir @PrivateAcl | Out-Null
if ($LASTEXITCODE -ne 0) {
    Write-Error "icacls could not make $StateDir private (exit $LASTEXITCODE)." -ErrorAction Continue
    exit 1
}

$config = [ordered]@{ server = $ServerUrl; log_level = 'info' } | ConvertTo-Json -Compress
[IO.File]::WriteAllText((Join-Path $StateDir 'service.json'), $config, (New-Object Text.UTF8Encoding($false)))

if ($EnrollmentCode -ne '') {
    # The agent enrolls, stores its credential in agent.json and connects; it is stopped once the
    # credential is there, and the service starts it again below.
    $arguments = @('agent', '--server', $ServerUrl, '--state-dir', "`"$StateDir`"", '--enroll', $EnrollmentCode)
    $enrolling = Start-Process -FilePath $Exe -ArgumentList $arguments -PassThru -NoNewWindow
    $deadline = (Get-Date).AddSeconds(60)
    while (-not (Test-Path -LiteralPath $AgentJson) -and -not $enrolling.HasExited -and (Get-Date) -lt $deadline) {
        Start-Sleep -Milliseconds 500
    }
    if (-not $enrolling.HasExited) {
        Stop-Process -Id $enrolling.Id -Force
    }
    if (-not (Test-Path -LiteralPath $AgentJson)) {
        Write-Error 'Enrollment failed: check the code (single use, 24 h) and that this PC reaches the server.' -ErrorAction Continue
        exit 1
    }
}
if (-not (Test-Path -LiteralPath $AgentJson)) {
    Write-Error 'This PC is not enrolled yet: pass -EnrollmentCode.' -ErrorAction Continue
    exit 2
}

if ($null -eq $existing) {
    New-Service -Name $ServiceName -DisplayName 'MSPclaw Agent' `
        -Description "Runs the MSPclaw server's signed, approved diagnostic and repair tool calls on this PC." `
        -BinaryPathName "`"$Exe`" service" -StartupType Automatic | Out-Null
}
& sc.exe failure $ServiceName reset= 86400 actions= restart/10000/restart/30000/restart/60000 | Out-Null
& sc.exe failureflag $ServiceName 1 | Out-Null
Start-Service -Name $ServiceName
Write-Output "MSPclaw agent installed and running as the service $ServiceName (server $ServerUrl)."
exit 0
