// Executables packed with UPX. Packing is not malice, but it hides code from static rules, so a
// packed binary is reported as suspicious with a low severity.
rule Packer_UPX_ELF
{
    meta:
        severity = "low"
        description = "ELF executable packed with UPX"
        family = "Packer.UPX"
    strings:
        $magic = "UPX!"
        $info = "$Info: This file is packed with the UPX executable packer"
    condition:
        uint32be(0) == 0x7F454C46 and $magic in (0..4096) and ($info or #magic >= 2)
}

rule Packer_UPX_PE
{
    meta:
        severity = "low"
        description = "PE executable packed with UPX (sections UPX0 and UPX1)"
        family = "Packer.UPX"
    strings:
        $upx0 = { 55 50 58 30 00 00 00 00 }
        $upx1 = { 55 50 58 31 00 00 00 00 }
    condition:
        uint16(0) == 0x5A4D and uint32(uint32(0x3C)) == 0x00004550
        and $upx0 in (0..4096) and $upx1 in (0..4096)
}
