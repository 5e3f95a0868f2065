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
public sealed record BoundStep(
    string Id,
    string Type,
    IReadOnlyList<string> Needs,
    string? FanOutOver,
    int FanOutCount,
    IReadOnlyDictionary<string, string> Parameters,
    int MaxAttempts,
    TimeSpan Backoff,
    TimeSpan MaxBackoff,
    TimeSpan Timeout,
    bool Gpu);

public sealed record BoundWorkflow(string Name, int Version, IReadOnlyList<BoundStep> Steps);

/// <summary>Loads and checks workflow templates: known step types, no cycles, known dependencies, bindable parameters.</summary>
public static partial class TemplateLoader
{
    public static readonly IReadOnlyList<string> StepTypes = ["prepare-data", "train", "evaluate-needle", "evaluate-domain-loss", "report"];
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
        diagnostics.AddRange(binder.Diagnostics);
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
                result.Add(new Diagnostic(Loc($"{p}.id"), DiagnosticCode.DuplicateKey, $"{p}.id", $"step id '{step.Id}' is used twice", "give each step its own id"));
            }

            if (!StepTypes.Contains(step.Type))
            {
                var s = Suggest.Closest(step.Type, StepTypes);
                result.Add(new Diagnostic(Loc($"{p}.type"), DiagnosticCode.UnknownStepType, $"{p}.type", $"unknown step type '{step.Type}'",
                    (s is null ? "" : $"did you mean '{s}'? ") + $"known types: {string.Join(", ", StepTypes)}"));
            }

            if (step.FanOut is { } fan && !FanOutKinds.Contains(fan.Over))
            {
                result.Add(new Diagnostic(Loc($"{p}.fan_out.over"), DiagnosticCode.InvalidValue, $"{p}.fan_out.over", $"cannot fan out over '{fan.Over}'", $"use one of: {string.Join(", ", FanOutKinds)}"));
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

            foreach (var (key, value) in new[] { ("timeout", step.Timeout), ("retry.backoff", step.Retry.Backoff), ("retry.max_backoff", step.Retry.MaxBackoff) })
            {
                if (!TryParseDuration(value, out _))
                {
                    result.Add(new Diagnostic(Loc($"{p}.{key}"), DiagnosticCode.InvalidValue, $"{p}.{key}", $"'{value}' is not a duration", "write e.g. 30s, 10m, 2h or 3d"));
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
                        $"step '{template.Steps[i].Id}' needs '{need}', which is not a step", s is null ? null : $"did you mean '{s}'?"));
                }
            }
        }

        if (result.Count == 0 && FindCycle(template) is { } cycle)
        {
            var first = ids[cycle[0]];
            result.Add(new Diagnostic(Loc($"steps[{first}].needs"), DiagnosticCode.Cycle, $"steps[{first}].needs",
                $"dependency cycle: {string.Join(" -> ", cycle)}", "a step cannot (indirectly) need itself: remove one of these needs"));
        }

        return result;
    }

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
    public static bool ExperimentPathExists(string path)
    {
        var type = typeof(ExperimentSpec);
        foreach (var part in path.Split('.'))
        {
            if (!SpecModel.IsRecord(type))
            {
                return false;
            }

            var field = SpecModel.Record(type).Field(part);
            if (field is null)
            {
                return false;
            }

            type = field.Type;
        }

        return true;
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
        TryParseDuration(text, out var d) ? d : throw new FormatException($"'{text}' is not a duration (the template was not checked)");

    /// <summary>Binds a checked template to an experiment: every ${path} replaced by the experiment's value, steps in dependency order.</summary>
    public static BoundWorkflow Bind(WorkflowTemplate template, ExperimentSpec spec)
    {
        var values = JsonNode.Parse(CanonicalForm.ToParameterJson(spec))!.AsObject();
        string Resolve(string text) => Expression().Replace(text, m =>
        {
            JsonNode? node = values;
            foreach (var part in m.Groups[1].Value.Trim().Split('.'))
            {
                node = node?[part];
            }

            return node switch
            {
                null => "",
                JsonValue v when v.TryGetValue<string>(out var s) => s,
                _ => node.ToJsonString(),
            };
        });

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

            var backoff = ParseDuration(s.Retry.Backoff);
            var maxBackoff = ParseDuration(s.Retry.MaxBackoff);
            var timeout = ParseDuration(s.Timeout);
            return new BoundStep(s.Id, s.Type, s.Needs, s.FanOut?.Over, count,
                s.With.ToDictionary(p => p.Key, p => Resolve(p.Value), StringComparer.Ordinal),
                s.Retry.MaxAttempts, backoff, maxBackoff, timeout, s.Gpu);
        }).ToList());
    }
}
