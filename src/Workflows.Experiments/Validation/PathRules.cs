using System.Text.Json;
using Workflows.Experiments.Paths;
using Workflows.Experiments.Spec;

namespace Workflows.Experiments.Validation;

/// <summary>
/// The path policy (<see cref="PathPolicy"/>) applied to every path an experiment names, as located diagnostics:
/// <c>data.paths</c>, <c>evaluation.domain_loss.paths</c> (files or folders of them), <c>evaluation.needle.haystack</c>
/// (a folder), a tokenizer file, and a <c>model.base</c> that is a path. Relative paths are relative to the experiment
/// file, as the engine resolves them. Inputs that do not exist yet are not an error here (the step that reads them says
/// so); the tokenizer and a base-model folder are read now: they must exist, and must be what they claim.
/// </summary>
public static class PathRules
{
    /// <summary>A HuggingFace config.json is a few KB; anything near this is not one.</summary>
    public const long MaxModelConfigBytes = 1 << 20;

    /// <summary>LLaMA-2's tokenizer.model is 500 KB; the largest SentencePiece models are a few MB.</summary>
    public const long MaxTokenizerBytes = 64L << 20;

    public static IEnumerable<Diagnostic> Check(ExperimentSpec spec, string file, IReadOnlyDictionary<string, SourceLocation> at, PathPolicy policy)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(file))!;
        var results = new List<Diagnostic>();

        void Add(string path, string written, string message, string hint)
        {
            var location = at.TryGetValue(path, out var l) ? l : at.TryGetValue(path.Split('[')[0], out var parent) ? parent : new SourceLocation(file, 1, 1);
            results.Add(new Diagnostic(location, DiagnosticCode.UnsafePath, path, $"{path} {Untrusted.Quote(written)} {message}", hint));
        }

        PathCheck? Inspect(string key, string written, PathUse use, bool mustExist)
        {
            var check = policy.Check(Path.GetFullPath(written, folder), use);
            if (check.Problem is { } problem)
            {
                Add(key, written, problem.Message, problem.Hint);
                return null;
            }

            if (!check.Exists && mustExist)
            {
                Add(key, written, "does not exist", use == PathUse.Folder ? "name an existing folder (relative paths start at the experiment file)" : "name an existing file (relative paths start at the experiment file)");
                return null;
            }

            return check;
        }

        void Walk(string key, string written, PathCheck check, string pattern, bool recursive)
        {
            if (check.Kind != FileKind.Directory)
            {
                return;
            }

            try
            {
                foreach (var _ in policy.EnumerateFiles(Path.GetFullPath(written, folder), pattern, recursive))
                {
                }
            }
            catch (UnsafePathException e)
            {
                Add(key, written, $"holds an entry that may not be read: {e.Message}", "remove the entry, or replace the link with the file itself");
            }
            catch (IOException e)
            {
                Add(key, written, $"cannot be listed ({e.GetType().Name})", "check the folder's permissions");
            }
            catch (UnauthorizedAccessException)
            {
                Add(key, written, "cannot be listed (permission denied)", "check the folder's permissions");
            }
        }

        foreach (var (key, paths) in new[] { ("data.paths", spec.Data.Paths), ("evaluation.domain_loss.paths", spec.Evaluation.DomainLoss.Paths) })
        {
            for (var i = 0; i < (paths?.Count ?? 0); i++)
            {
                var item = $"{key}[{i}]";
                if (Inspect(item, paths![i], PathUse.FileOrFolder, mustExist: false) is { } check)
                {
                    Walk(item, paths[i], check, "*", recursive: true);
                }
            }
        }

        if (spec.Evaluation.Needle.Haystack is { } haystack && Inspect("evaluation.needle.haystack", haystack, PathUse.Folder, mustExist: false) is { } hay)
        {
            Walk("evaluation.needle.haystack", haystack, hay, "*.txt", recursive: false);
        }

        if (IsTokenizerPath(spec.Data.Tokenizer) && Inspect("data.tokenizer", spec.Data.Tokenizer, PathUse.File, mustExist: true) is { } tokenizer)
        {
            CheckTokenizer(tokenizer.Resolved, spec.Data.Tokenizer, policy, Add);
        }

        if (ModelCatalog.IsPath(spec.Model.Base) && Inspect("model.base", spec.Model.Base, PathUse.Folder, mustExist: true) is { } model)
        {
            CheckModelFolder(model.Resolved, spec.Model.Base, policy, Add);
        }

        return results;
    }

    /// <summary>A tokenizer named by path (not a known id such as gpt2 or llama-2).</summary>
    public static bool IsTokenizerPath(string tokenizer) =>
        !SpecRules.KnownTokenizers.Contains(tokenizer) && tokenizer.EndsWith(".model", StringComparison.Ordinal);

    private static void CheckTokenizer(string resolved, string written, PathPolicy policy, Action<string, string, string, string> add)
    {
        byte[] head;
        try
        {
            using var stream = policy.OpenRead(resolved);
            if (stream.Length > MaxTokenizerBytes)
            {
                add("data.tokenizer", written, $"is {stream.Length:N0} bytes; a SentencePiece model is at most {MaxTokenizerBytes:N0}", "name the tokenizer.model file of the base model");
                return;
            }

            head = new byte[Math.Min(2, stream.Length)];
            stream.ReadExactly(head);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            add("data.tokenizer", written, $"cannot be read ({e.GetType().Name})", "check the file's permissions");
            return;
        }

        // A SentencePiece ModelProto starts with field 1 (the pieces), length-delimited: tag byte 0x0A.
        if (head.Length < 2 || head[0] != 0x0A)
        {
            add("data.tokenizer", written, "is not a SentencePiece model (a ModelProto starts with its piece list, byte 0x0A)",
                "name the tokenizer.model file of the base model, or use gpt2 / llama-2");
        }
    }

    private static void CheckModelFolder(string resolved, string written, PathPolicy policy, Action<string, string, string, string> add)
    {
        var config = Path.Combine(resolved, "config.json");
        var check = policy.Check(config, PathUse.File);
        if (check.Problem is { } problem)
        {
            add("model.base", written, $"has a config.json that {problem.Message}", problem.Hint);
            return;
        }

        if (!check.Exists)
        {
            add("model.base", written, "has no config.json: it is not a HuggingFace model folder", "name a folder with config.json and *.safetensors, or a known id (llama-2-7b, llama-2-13b, tiny)");
            return;
        }

        if (new FileInfo(check.Resolved).Length > MaxModelConfigBytes)
        {
            add("model.base", written, $"has a config.json larger than {MaxModelConfigBytes:N0} bytes: not a model config", "a HuggingFace config.json is a few KB");
            return;
        }

        try
        {
            var bytes = policy.ReadAllBytes(config, MaxModelConfigBytes);
            using var json = JsonDocument.Parse(bytes);
            if (json.RootElement.ValueKind != JsonValueKind.Object)
            {
                add("model.base", written, $"has a config.json that is a JSON {json.RootElement.ValueKind}, not an object", "a HuggingFace config.json is one JSON object");
            }
        }
        catch (JsonException e)
        {
            // The position, not the text: System.Text.Json's message can quote the offending byte.
            add("model.base", written, $"has a config.json that is not valid JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1})", "a HuggingFace config.json is one JSON object");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            add("model.base", written, $"has a config.json that cannot be read ({e.GetType().Name})", "check the file's permissions");
        }

        try
        {
            foreach (var _ in policy.EnumerateFiles(resolved, "*", recursive: false))
            {
            }
        }
        catch (UnsafePathException e)
        {
            add("model.base", written, $"holds an entry that may not be read: {e.Message}", "remove the entry, or replace the link with the file itself");
        }
    }
}
