// PowerShell launched with a long base64 -EncodedCommand (or an accepted abbreviation of it).
// Admin tools do this too, so it is suspicious rather than malicious.
rule PowerShell_Encoded_Command
{
    meta:
        severity = "medium"
        description = "PowerShell command line with a long base64 -EncodedCommand argument"
        family = "PowerShell"
    strings:
        $host1 = "powershell" nocase ascii wide
        $host2 = "pwsh" nocase ascii wide
        $enc = /\s[-\/]e(c|n|nc|nco|ncod|ncode|ncoded|ncodedc|ncodedco|ncodedcom|ncodedcomm|ncodedcomma|ncodedcomman|ncodedcommand)?\s+["']?[A-Za-z0-9+\/]{40,}={0,2}/ nocase ascii wide
    condition:
        any of ($host*) and $enc
}

// A download cradle: fetch a script from the network and execute it in memory.
rule PowerShell_Download_Cradle
{
    meta:
        severity = "high"
        description = "PowerShell downloads a script and runs it in memory (download cradle)"
        family = "PowerShell"
    strings:
        $webclient = /New-Object\s+(System\.)?Net\.WebClient/ nocase ascii wide
        $download = /\.Download(String|Data)\s*\(/ nocase ascii wide
        $iex = /(\b|[;|(&])(iex|Invoke-Expression)\b/ nocase ascii wide
        $pipe = /\b(iwr|irm|Invoke-WebRequest|Invoke-RestMethod)\s[^\n|]{1,300}\|\s*(iex|Invoke-Expression)\b/ nocase ascii wide
    condition:
        ($webclient and $download and $iex) or $pipe
}
