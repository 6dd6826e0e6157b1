<#
.SYNOPSIS
    Removes the MSPclaw agent service and program; -RemoveState also deletes its credential and journal.

.DESCRIPTION
    Run as SYSTEM or an administrator (for example pushed by the MSP's RMM tool). Revoke the agent on
    the server as well (POST /api/agents/{id}/revoke), or its credential stays valid until then.
    Exit codes: 0 removed; 2 not an administrator.
#>
[CmdletBinding()]
param(
    [switch] $RemoveState
)

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'

$ServiceName = 'MSPclawAgent'
$InstallDir = Join-Path $env:ProgramFiles 'MSPclaw'
$StateDir = Join-Path $env:ProgramData 'mspclaw-agent'

$identity = [Security.Principal.WindowsIdentity]::GetCurrent()
$principal = New-Object Security.Principal.WindowsPrincipal($identity)
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Write-Error 'Run this script as SYSTEM or an administrator.' -ErrorAction Continue
    exit 2
}

$existing = Get-Service -Name $ServiceName -ErrorAction SilentlyContinue
if ($null -ne $existing) {
    if ($existing.Status -ne 'Stopped') {
        Stop-Service -Name $ServiceName -Force
        $existing.WaitForStatus('Stopped', [TimeSpan]::FromSeconds(30))
    }
    & sc.exe delete $ServiceName | Out-Null
}
if (Test-Path -LiteralPath $InstallDir) {
    Remove-Item -LiteralPath $InstallDir -Recurse -Force
}
if ($RemoveState -and (Test-Path -LiteralPath $StateDir)) {
    Remove-Item -LiteralPath $StateDir -Recurse -Force
}
Write-Output 'MSPclaw agent removed.'
exit 0
