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

// A VBScript/JScript dropper: fetch over HTTP, write the body to disk with an ADODB stream, run it.
// The object names are written as regular expressions with escaped dots, so that this rule file
// (and any other file that merely quotes the rule) does not match itself.
rule Script_Dropper_ADODB
{
    meta:
        severity = "high"
        description = "script fetches a file over HTTP, saves it with an ADODB stream and executes it"
        family = "Dropper"
    strings:
        $http = /(MSXML2\.(Server)?XMLHTTP|WinHttp\.WinHttpRequest)/ nocase ascii wide
        $stream = /ADODB\.Stream/ nocase ascii wide
        $save = /\.SaveToFile\b/ nocase ascii wide
        $exec = /(WScript\.Shell|Shell\.Application)/ nocase ascii wide
    condition:
        filesize < 1MB and $http and $stream and $save and $exec
}
