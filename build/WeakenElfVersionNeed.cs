// MSBuild task (compiled by RoslynCodeTaskFactory from TorchSharp.NativeShim.targets): copies an ELF64
// shared library and marks one symbol-version *need* as weak (VER_FLG_WEAK in vna_flags of .gnu.version_r).
//
// Why: TorchSharp 0.107's libLibTorchSharp.so was linked with GCC 13, so its version-needs table lists
// GLIBCXX_3.4.32 for libstdc++.so.6. The only symbol of that version is std::ios_base_library_init(), which
// GCC 13 references without any relocation (a link-time-only dependency), so nothing is ever bound to it.
// glibc's loader still checks every listed version need and refuses to load the library when a non-weak one
// is missing, which is the case on Debian 12 (GCC 12, GLIBCXX up to 3.4.30) and Ubuntu 22.04. A weak need that
// is missing is only reported (LD_DEBUG), never fatal. Before patching, the task proves that no relocation
// binds a symbol of that version; if a future shim does bind one, weakening would only move the failure to
// the first call, so the build fails instead and the shim must come from a newer toolchain or distro.
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class WeakenElfVersionNeed : Task
{
    [Required] public string InputFile { get; set; } = "";
    [Required] public string OutputFile { get; set; } = "";
    /// <summary>The library whose need is weakened, as written in DT_NEEDED (e.g. libstdc++.so.6).</summary>
    [Required] public string NeededLibrary { get; set; } = "";
    /// <summary>The version name to weaken (e.g. GLIBCXX_3.4.32).</summary>
    [Required] public string VersionName { get; set; } = "";

    const uint SHT_RELA = 4, SHT_REL = 9, SHT_GNU_verneed = 0x6ffffffe, SHT_GNU_versym = 0x6fffffff;
    const ushort VER_FLG_WEAK = 0x2;

    public override bool Execute()
    {
        byte[] elf = File.ReadAllBytes(InputFile);
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            return Fail("is not an ELF file");
        if (elf[4] != 2 || elf[5] != 1)
            return Fail("is not a little-endian ELF64 file");

        ulong shoff = U64(elf, 0x28);
        int shentsize = U16(elf, 0x3A), shnum = U16(elf, 0x3C);
        var sections = new List<Section>();
        for (int i = 0; i < shnum; i++)
        {
            long h = (long)shoff + (long)i * shentsize;
            sections.Add(new Section(U32(elf, h + 4), (long)U64(elf, h + 0x18), (long)U64(elf, h + 0x20),
                U32(elf, h + 0x28), U32(elf, h + 0x2C), (long)U64(elf, h + 0x38)));
        }

        Section? verneed = sections.Find(s => s.Type == SHT_GNU_verneed);
        if (verneed == null) return CopyUnchanged("has no .gnu.version_r section");
        long strtab = sections[(int)verneed.Link].Offset;

        // Walk Elf64_Verneed { vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32 }
        // and its Elf64_Vernaux { vna_hash u32, vna_flags u16, vna_other u16, vna_name u32, vna_next u32 }.
        long flagsAt = -1; int versionIndex = -1;
        long vn = verneed.Offset;
        for (uint e = 0; e < verneed.Info; e++)
        {
            string file = CString(elf, strtab + U32(elf, vn + 4));
            long aux = vn + U32(elf, vn + 8);
            for (int a = 0; a < U16(elf, vn + 2); a++)
            {
                string name = CString(elf, strtab + U32(elf, aux + 8));
                if (file == NeededLibrary && name == VersionName) { flagsAt = aux + 4; versionIndex = U16(elf, aux + 6); }
                uint nextAux = U32(elf, aux + 12);
                if (nextAux == 0) break;
                aux += nextAux;
            }
            uint next = U32(elf, vn + 12);
            if (next == 0) break;
            vn += next;
        }
        if (flagsAt < 0) return CopyUnchanged($"does not need {VersionName} from {NeededLibrary}");

        // Safety proof: no dynamic relocation may refer to a symbol whose version is the one we weaken.
        Section? versym = sections.Find(s => s.Type == SHT_GNU_versym);
        if (versym != null)
        {
            int dynsymIndex = (int)versym.Link;
            Section dynsym = sections[dynsymIndex];
            long dynstr = sections[(int)dynsym.Link].Offset;
            var unbound = new List<string>();
            long symbols = dynsym.Size / 24;
            for (long sym = 1; sym < symbols; sym++)
                if ((U16(elf, versym.Offset + sym * 2) & 0x7fff) == versionIndex)
                    unbound.Add(CString(elf, dynstr + U32(elf, dynsym.Offset + sym * 24)));
            foreach (Section rel in sections)
            {
                if ((rel.Type != SHT_RELA && rel.Type != SHT_REL) || rel.Link != dynsymIndex) continue;
                long entry = rel.Type == SHT_RELA ? 24 : 16;
                for (long r = rel.Offset; r < rel.Offset + rel.Size; r += entry)
                {
                    long sym = (long)(U64(elf, r + 8) >> 32);
                    if (sym != 0 && (U16(elf, versym.Offset + sym * 2) & 0x7fff) == versionIndex)
                    {
                        string symName = CString(elf, dynstr + U32(elf, dynsym.Offset + sym * 24));
                        return Fail($"binds {symName}@{VersionName} through a relocation; marking the need weak would only defer the failure");
                    }
                }
            }
            Log.LogMessage(MessageImportance.Low, $"{InputFile}: symbols of {VersionName} (none relocated): {string.Join(", ", unbound)}");
        }

        ushort flags = (ushort)U16(elf, flagsAt);
        flags |= VER_FLG_WEAK;
        elf[flagsAt] = (byte)flags;
        elf[flagsAt + 1] = (byte)(flags >> 8);
        WriteIfChanged(elf);
        Log.LogMessage(MessageImportance.Normal, $"Wrote {OutputFile}: need {NeededLibrary}/{VersionName} marked weak");
        return true;
    }

    bool CopyUnchanged(string why)
    {
        Log.LogMessage(MessageImportance.Normal, $"{InputFile} {why}; copied unchanged to {OutputFile}");
        WriteIfChanged(File.ReadAllBytes(InputFile));
        return true;
    }

    bool Fail(string why)
    {
        Log.LogError($"{InputFile} {why}.");
        return false;
    }

    // Rewriting an identical file would bump its timestamp and make every consumer copy it again.
    void WriteIfChanged(byte[] content)
    {
        if (File.Exists(OutputFile) && SameBytes(File.ReadAllBytes(OutputFile), content)) return;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(OutputFile))!);
        string temp = OutputFile + ".tmp";
        File.WriteAllBytes(temp, content);
        File.Copy(temp, OutputFile, true);
        File.Delete(temp);
    }

    static bool SameBytes(byte[] a, byte[] b)
    {
        if (a.Length != b.Length) return false;
        for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) return false;
        return true;
    }

    static int U16(byte[] b, long o) => b[o] | (b[o + 1] << 8);
    static uint U32(byte[] b, long o) => (uint)(b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24));
    static ulong U64(byte[] b, long o) => U32(b, o) | ((ulong)U32(b, o + 4) << 32);
    static string CString(byte[] b, long o)
    {
        long end = o;
        while (b[end] != 0) end++;
        return Encoding.ASCII.GetString(b, (int)o, (int)(end - o));
    }

    sealed class Section
    {
        public Section(uint type, long offset, long size, uint link, uint info, long entSize)
        { Type = type; Offset = offset; Size = size; Link = link; Info = info; EntSize = entSize; }
        public uint Type { get; }
        public long Offset { get; }
        public long Size { get; }
        public uint Link { get; }
        public uint Info { get; }
        public long EntSize { get; }
    }
}
