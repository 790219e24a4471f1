// The EICAR anti-malware test file: 68 bytes at offset 0, optionally followed by whitespace,
// at most 128 bytes in all (as the EICAR specification defines it). The string is written in hex
// so that this rule file itself is not flagged by other scanners.
rule EICAR_Test_File
{
    meta:
        severity = "high"
        description = "EICAR anti-malware test file (not malware; used to test detection)"
        family = "Test"
    strings:
        // X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*
        $eicar = { 58 35 4F 21 50 25 40 41 50 5B 34 5C 50 5A 58 35 34 28 50 5E 29 37 43 43 29 37 7D
                   24 45 49 43 41 52 2D 53 54 41 4E 44 41 52 44 2D 41 4E 54 49 56 49 52 55 53 2D
                   54 45 53 54 2D 46 49 4C 45 21 24 48 2B 48 2A }
    condition:
        $eicar at 0 and filesize <= 128
}
