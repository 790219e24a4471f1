// A shell script that downloads a file into a world-writable temp directory, makes it executable
// and runs it from there: the classic Linux dropper. Piping an installer into sh is NOT matched
// (common in legitimate install instructions).
rule Script_Dropper_Download_Exec
{
    meta:
        severity = "high"
        description = "script downloads a binary to a temp dir, marks it executable and runs it"
        family = "Dropper"
    strings:
        $download = /(curl|wget|fetch)\s[^\n]{0,300}\/(tmp|dev\/shm|var\/tmp)\/[A-Za-z0-9._\-]+/
        $chmod = /chmod\s+(\+x|[0-7]?[0-7]?[157][0-7]?[0-7]?)\s[^\n]{0,100}\/(tmp|dev\/shm|var\/tmp)\//
        $run = /(^|[;&|\n]\s*|nohup\s+|exec\s+|setsid\s+)\/(tmp|dev\/shm|var\/tmp)\/[A-Za-z0-9._\-]+/
    condition:
        filesize < 1MB and $download and $chmod and $run
}

// A VBScript/JScript dropper: fetch over HTTP, write the body to disk with ADODB.Stream, run it.
rule Script_Dropper_ADODB
{
    meta:
        severity = "high"
        description = "script fetches a file over HTTP, saves it with ADODB.Stream and executes it"
        family = "Dropper"
    strings:
        $http1 = "MSXML2.XMLHTTP" nocase ascii wide
        $http2 = "WinHttp.WinHttpRequest" nocase ascii wide
        $http3 = "MSXML2.ServerXMLHTTP" nocase ascii wide
        $stream = "ADODB.Stream" nocase ascii wide
        $save = ".SaveToFile" nocase ascii wide
        $exec1 = "WScript.Shell" nocase ascii wide
        $exec2 = "Shell.Application" nocase ascii wide
    condition:
        filesize < 1MB and any of ($http*) and $stream and $save and any of ($exec*)
}
