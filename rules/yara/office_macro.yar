// An Office document whose VBA project auto-executes a macro on open. The archive walker passes each
// zip member's path in the external variable member_name, so this only fires on the VBA project
// (an OLE compound file) of a docm/xlsm/pptm, never on text that merely mentions AutoOpen.
rule Office_AutoExec_Macro
{
    meta:
        severity = "medium"
        description = "Office VBA project with an auto-executing macro (AutoOpen, Document_Open, ...)"
        family = "Office.Macro"
    strings:
        $auto1 = "AutoOpen" nocase ascii wide
        $auto2 = "Auto_Open" nocase ascii wide
        $auto3 = "Document_Open" nocase ascii wide
        $auto4 = "Workbook_Open" nocase ascii wide
        $auto5 = "AutoExec" nocase ascii wide
        $auto6 = "Document_New" nocase ascii wide
    condition:
        uint32be(0) == 0xD0CF11E0 and member_name iendswith "vbaProject.bin" and any of ($auto*)
}
