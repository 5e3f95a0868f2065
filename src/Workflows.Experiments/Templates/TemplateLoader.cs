using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Validation;
using Workflows.Experiments.Yaml;

namespace Workflows.Experiments.Templates;

public sealed record TemplateLoadResult(string File, WorkflowTemplate? Template, IReadOnlyList<Diagnostic> Diagnostics)
{
    public bool IsValid => Template is not null && Diagnostics.Count == 0;
}

/// <summary>A template bound to one experiment: parameters resolved to values, fan-out counts known, steps in order.</summary>
/// <param name="Parameters">The step type's parameters record as canonical JSON (<see cref="StepParameters"/>): all a handler is given besides its inputs.</param>
public sealed record BoundStep(
    string Id,
    string Type,
    IReadOnlyList<string> Needs,
    string? FanOutOver,
    int FanOutCount,
    string Parameters,
    int MaxAttempts,
    TimeSpan Backoff,
    TimeSpan MaxBackoff,
    TimeSpan Timeout);

public sealed record BoundWorkflow(string Name, int Version, IReadOnlyList<BoundStep> Steps);

/// <summary>Loads and checks workflow templates: known step types, no cycles, known dependencies, bindable parameters.</summary>
public static partial class TemplateLoader
{
    public static readonly IReadOnlyList<string> StepTypes = [.. StepContracts.All.Select(c => c.Type)];
    public static readonly IReadOnlyList<string> FanOutKinds = ["shards", "needle-lengths"];

    [GeneratedRegex(@"\$\{([^}]*)\}")]
    private static partial Regex Expression();

    public static TemplateLoadResult LoadFile(string path) => Load(path, YamlTreeReader.ReadFile(path));

    public static TemplateLoadResult LoadText(string name, string yaml) => Load(name, YamlTreeReader.ReadText(name, yaml));

    private static TemplateLoadResult Load(string file, YamlTreeReader.Result read)
    {
        var diagnostics = new List<Diagnostic>(read.Diagnostics);
        if (read.Root is null && read.Diagnostics.Count > 0)
        {
            return new TemplateLoadResult(file, null, diagnostics);
        }

        var binder = new SpecBinder(file);
        var template = binder.Bind<WorkflowTemplate>(read.Root);
        diagnostics.AddRange(binder.Diagnostics.Select(d => d.Code == DiagnosticCode.UnknownKey && d.Path.EndsWith(".gpu", StringComparison.Ordinal)
            ? d with { Hint = "whether a step needs a GPU is part of its step type (src/Workflows.Experiments/Templates/StepContracts.cs): remove 'gpu:'" }
            : d));
        if (template is not null)
        {
            diagnostics.AddRange(Check(template, file, binder.Locations));
        }

        return new TemplateLoadResult(file, diagnostics.Count == 0 ? template : null,
            diagnostics.OrderBy(d => d.Location.Line).ThenBy(d => d.Location.Column).ToList());
    }

    private static IEnumerable<Diagnostic> Check(WorkflowTemplate template, string file, IReadOnlyDictionary<string, SourceLocation> at)
    {
        var result = new List<Diagnostic>();
        SourceLocation Loc(string path) => at.TryGetValue(path, out var l) ? l : new SourceLocation(file, 1, 1);
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < template.Steps.Count; i++)
        {
            var step = template.Steps[i];
            var p = $"steps[{i}]";
            if (!ids.TryAdd(step.Id, i))
            {
                result.Add(new Diagnostic(Loc($"{p}.id"), DiagnosticCode.DuplicateKey, $"{p}.id", $"step id {Untrusted.Quote(step.Id)} is used twice", "give each step its own id"));
            }

            if (!StepTypes.Contains(step.Type))
            {
                var s = Suggest.Closest(step.Type, StepTypes);
                result.Add(new Diagnostic(Loc($"{p}.type"), DiagnosticCode.UnknownStepType, $"{p}.type", $"unknown step type {Untrusted.Quote(step.Type)}",
                    (s is null ? "" : $"did you mean '{s}'? ") + $"known types: {string.Join(", ", StepTypes)}"));
            }

            if (step.FanOut is { } fan && !FanOutKinds.Contains(fan.Over))
            {
                result.Add(new Diagnostic(Loc($"{p}.fan_out.over"), DiagnosticCode.InvalidValue, $"{p}.fan_out.over", $"cannot fan out over {Untrusted.Quote(fan.Over)}", $"use one of: {string.Join(", ", FanOutKinds)}"));
            }

            foreach (var (key, value) in Parameters(step))
            {
                foreach (Match m in Expression().Matches(value))
                {
                    var path = m.Groups[1].Value.Trim();
                    if (!ExperimentPathExists(path))
                    {
                        result.Add(new Diagnostic(Loc($"{p}.{key}"), DiagnosticCode.UnboundParameter, $"{p}.{key}",
                            $"'${{{path}}}' does not name a field of the experiment", "use a dotted path such as ${data.token_budget} (see experiments/schema.json)"));
                    }
                }
            }

            if (StepContracts.Find(step.Type) is { } contract)
            {
                result.AddRange(CheckContract(step, contract, p, Loc));
            }

            foreach (var (key, value) in new[] { ("timeout", step.Timeout), ("retry.backoff", step.Retry.Backoff), ("retry.max_backoff", step.Retry.MaxBackoff) })
            {
                if (!TryParseDuration(value, out _))
                {
                    result.Add(new Diagnostic(Loc($"{p}.{key}"), DiagnosticCode.InvalidValue, $"{p}.{key}", $"{Untrusted.Quote(value)} is not a duration", "write e.g. 30s, 10m, 2h or 3d"));
                }
            }
        }

        for (var i = 0; i < template.Steps.Count; i++)
        {
            for (var j = 0; j < template.Steps[i].Needs.Count; j++)
            {
                var need = template.Steps[i].Needs[j];
                if (!ids.ContainsKey(need))
                {
                    var s = Suggest.Closest(need, ids.Keys);
                    result.Add(new Diagnostic(Loc($"steps[{i}].needs[{j}]"), DiagnosticCode.UnknownDependency, $"steps[{i}].needs",
                        $"step {Untrusted.Quote(template.Steps[i].Id)} needs {Untrusted.Quote(need)}, which is not a step", s is null ? null : $"did you mean '{s}'?"));
                }
            }
        }

        if (result.Count == 0 && FindCycle(template) is { } cycle)
        {
            var first = ids[cycle[0]];
            result.Add(new Diagnostic(Loc($"steps[{first}].needs"), DiagnosticCode.Cycle, $"steps[{first}].needs",
                $"dependency cycle: {string.Join(" -> ", cycle)}", "a step cannot (indirectly) need itself: remove one of these needs"));
        }

        // Inputs last: on a template whose steps, types and needs are sound, so one mistake is reported once.
        if (result.Count == 0)
        {
            var types = template.Steps.ToDictionary(t => t.Id, t => t.Type, StringComparer.Ordinal);
            for (var i = 0; i < template.Steps.Count; i++)
            {
                result.AddRange(CheckInputs(template.Steps[i], StepContracts.Find(template.Steps[i].Type)!, types, $"steps[{i}]", Loc));
            }
        }

        return result;
    }

    /// <summary>
    /// The <c>with:</c> block must bind every parameter of the step type, and nothing else: what a handler reads is
    /// exactly what the template binds, so the step's cache key covers it. A whole-value <c>${path}</c> must name a
    /// field of the parameter's type; any other value is a literal string.
    /// </summary>
    private static IEnumerable<Diagnostic> CheckContract(StepTemplate step, StepContract contract, string p, Func<string, SourceLocation> loc)
    {
        var fields = SpecModel.Record(contract.Parameters).Fields;
        foreach (var (key, value) in step.With)
        {
            var field = fields.FirstOrDefault(f => f.Key == key);
            if (field is null)
            {
                var s = Suggest.Closest(key, fields.Select(f => f.Key));
                yield return new Diagnostic(loc($"{p}.with.{key}"), DiagnosticCode.UnknownKey, $"{p}.with.{key}",
                    $"step type '{contract.Type}' has no parameter '{key}'",
                    (s is null ? "" : $"did you mean '{s}'? ") + $"its parameters: {string.Join(", ", fields.Select(f => f.Key))}");
                continue;
            }

            var whole = Expression().Match(value.Trim());
            if (whole.Success && whole.Length == value.Trim().Length)
            {
                if (ExperimentPathType(whole.Groups[1].Value.Trim()) is { } type && type != field.Type)
                {
                    yield return new Diagnostic(loc($"{p}.with.{key}"), DiagnosticCode.WrongType, $"{p}.with.{key}",
                        $"'{value}' is {TypeName(type)}, but '{contract.Type}' reads '{key}' as {TypeName(field.Type)}", null);
                }
            }
            else if (field.Type != typeof(string))
            {
                yield return new Diagnostic(loc($"{p}.with.{key}"), DiagnosticCode.WrongType, $"{p}.with.{key}",
                    $"'{contract.Type}' reads '{key}' as {TypeName(field.Type)}: bind it with a ${{path}} of the experiment", null);
            }
        }

        foreach (var missing in fields.Where(f => !step.With.ContainsKey(f.Key)))
        {
            yield return new Diagnostic(loc($"{p}.with"), DiagnosticCode.MissingKey, $"{p}.with.{missing.Key}",
                $"step '{step.Id}' (type {contract.Type}) reads '{missing.Key}', which its 'with:' does not bind",
                $"add '{missing.Key}: \"${{...}}\"' naming the experiment field it comes from");
        }
    }

    /// <summary>Each input the step type reads comes from exactly one step it needs; it needs nothing it does not read.</summary>
    private static IEnumerable<Diagnostic> CheckInputs(StepTemplate step, StepContract contract, IReadOnlyDictionary<string, string> types,
        string p, Func<string, SourceLocation> loc)
    {
        var needed = step.Needs.Where(types.ContainsKey).Select(n => (Id: n, Type: types[n])).ToList();
        foreach (var input in contract.Inputs)
        {
            var from = needed.Where(n => n.Type == input.Type).ToList();
            if (from.Count > 1 || (from.Count == 0 && !input.Optional))
            {
                yield return new Diagnostic(loc($"{p}.needs"), DiagnosticCode.UnknownDependency, $"{p}.needs",
                    from.Count == 0
                        ? $"step '{step.Id}' (type {contract.Type}) reads the output of a '{input.Type}' step, but needs none"
                        : $"step '{step.Id}' needs {from.Count} steps of type '{input.Type}' ({string.Join(", ", from.Select(f => f.Id))}); it reads one",
                    from.Count == 0 ? $"add the id of a '{input.Type}' step to its needs" : "keep one");
            }
        }

        foreach (var n in needed.Where(n => contract.Input(n.Type) is null))
        {
            yield return new Diagnostic(loc($"{p}.needs"), DiagnosticCode.UnknownDependency, $"{p}.needs",
                $"step '{step.Id}' (type {contract.Type}) needs '{n.Id}' (type {n.Type}) but does not read its output",
                $"'{contract.Type}' reads: {(contract.Inputs.Count == 0 ? "no other step's output" : string.Join(", ", contract.Inputs.Select(i => i.Type + (i.Optional ? " (optional)" : ""))))}");
        }
    }

    private static string TypeName(Type type) =>
        type.IsGenericType ? $"a list of {TypeName(type.GetGenericArguments()[0])}" : type == typeof(long) || type == typeof(int) ? "a number" : type.Name;

    private static IEnumerable<(string Key, string Value)> Parameters(StepTemplate step)
    {
        foreach (var (k, v) in step.With)
        {
            yield return ($"with.{k}", v);
        }

        if (step.FanOut is { } fan)
        {
            yield return ("fan_out.count", fan.Count);
        }
    }

    /// <summary>True if a dotted path names a field of the experiment spec (walking the spec model).</summary>
    public static bool ExperimentPathExists(string path) => ExperimentPathType(path) is not null;

    /// <summary>The type of the experiment field a dotted path names (Nullable&lt;T&gt; unwrapped), or null.</summary>
    public static Type? ExperimentPathType(string path)
    {
        Type? type = typeof(ExperimentSpec);
        foreach (var part in path.Split('.'))
        {
            type = type is not null && SpecModel.IsRecord(type) ? SpecModel.Record(type).Field(part)?.Type : null;
        }

        return type;
    }

    private static List<string>? FindCycle(WorkflowTemplate template)
    {
        var byId = template.Steps.ToDictionary(s => s.Id, StringComparer.Ordinal);
        var state = new Dictionary<string, int>(StringComparer.Ordinal);
        var stack = new List<string>();
        List<string>? Visit(string id)
        {
            state[id] = 1;
            stack.Add(id);
            foreach (var need in byId[id].Needs)
            {
                if (state.GetValueOrDefault(need) == 1)
                {
                    return [.. stack[stack.IndexOf(need)..], need];
                }

                if (state.GetValueOrDefault(need) == 0 && Visit(need) is { } found)
                {
                    return found;
                }
            }

            stack.RemoveAt(stack.Count - 1);
            state[id] = 2;
            return null;
        }

        foreach (var step in template.Steps)
        {
            if (state.GetValueOrDefault(step.Id) == 0 && Visit(step.Id) is { } cycle)
            {
                return cycle;
            }
        }

        return null;
    }

    public static bool TryParseDuration(string text, out TimeSpan duration)
    {
        duration = default;
        if (text.Length < 2 || !double.TryParse(text[..^1], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n))
        {
            return false;
        }

        TimeSpan? value = text[^1] switch
        {
            's' => TimeSpan.FromSeconds(n),
            'm' => TimeSpan.FromMinutes(n),
            'h' => TimeSpan.FromHours(n),
            'd' => TimeSpan.FromDays(n),
            _ => null,
        };
        duration = value ?? default;
        return value is not null;
    }

    private static TimeSpan ParseDuration(string text) =>
        TryParseDuration(text, out var d) ? d : throw new FormatException($"{Untrusted.Quote(text)} is not a duration (the template was not checked)");

    /// <summary>
    /// Binds a checked template to an experiment: each step's <c>with:</c> becomes its step type's parameters record
    /// (<see cref="StepContracts"/>), in canonical JSON; steps in dependency order.
    /// </summary>
    public static BoundWorkflow Bind(WorkflowTemplate template, ExperimentSpec spec)
    {
        var values = JsonNode.Parse(CanonicalForm.ToParameterJson(spec))!.AsObject();
        JsonNode? ValueAt(string path)
        {
            JsonNode? node = values;
            foreach (var part in path.Trim().Split('.'))
            {
                node = node?[part];
            }

            return node;
        }

        string Resolve(string text) => Expression().Replace(text, m => ValueAt(m.Groups[1].Value) switch
        {
            null => "",
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            var node => node.ToJsonString(),
        });

        string BindParameters(StepTemplate s)
        {
            var json = new JsonObject();
            foreach (var (key, text) in s.With)
            {
                var whole = Expression().Match(text.Trim());
                json[key] = whole.Success && whole.Length == text.Trim().Length ? ValueAt(whole.Groups[1].Value)?.DeepClone() : JsonValue.Create(Resolve(text));
            }

            var contract = StepContracts.Find(s.Type) ?? throw new InvalidOperationException($"step type '{s.Type}' has no contract (the template was not checked)");
            return StepParameters.ToJson((IStepParameters)StepParameters.Bind(contract.Parameters, json.ToJsonString(), $"{template.Name}/{s.Id}"));
        }

        var ordered = new List<StepTemplate>();
        var done = new HashSet<string>(StringComparer.Ordinal);
        while (ordered.Count < template.Steps.Count)
        {
            var next = template.Steps.First(s => !done.Contains(s.Id) && s.Needs.All(done.Contains));
            ordered.Add(next);
            done.Add(next.Id);
        }

        return new BoundWorkflow(template.Name, template.Version, ordered.Select(s =>
        {
            var count = 1;
            if (s.FanOut is { } fan)
            {
                count = int.Parse(Resolve(fan.Count), CultureInfo.InvariantCulture);
            }

            return new BoundStep(s.Id, s.Type, s.Needs, s.FanOut?.Over, count, BindParameters(s),
                s.Retry.MaxAttempts, ParseDuration(s.Retry.Backoff), ParseDuration(s.Retry.MaxBackoff), ParseDuration(s.Timeout));
        }).ToList());
    }
}
