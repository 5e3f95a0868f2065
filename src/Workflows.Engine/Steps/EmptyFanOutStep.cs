using DurableTask.Core;
using Workflows.Engine.Orchestration;
using Workflows.Experiments.Templates;

namespace Workflows.Engine.Steps;

/// <summary>Parameters of a step type that reads none.</summary>
public sealed record NoParameters : IStepParameters
{
    public const string Json = "{}";
}

/// <summary>A step type with N empty activities and no artifacts: measures the engine's own overhead (<c>wf bench engine</c>).</summary>
public static class EmptyFanOutStep
{
    public const string Type = "bench-empty";
    public const string Activity = "bench-empty.item";

    public static readonly StepContract Contract = new(Type, typeof(NoParameters), [], Gpu: false, "N empty activities (wf bench engine)");

    public static StepHandler Create() => new(Contract, new Runner(), [new ActivityRegistration(Activity, new Empty())]);

    private sealed class Runner : IStepRunner
    {
        public async Task<StepOutput> RunAsync(StepScope scope)
        {
            await scope.FanOutAsync(scope.Step.FanOutCount, i => scope.CallAsync<int>(Activity, i, $"{i}"), "items");
            return new StepOutput(scope.Step.Id, Type, new string('0', 64), "", new string('0', 64), Cached: false);
        }
    }

    private sealed class Empty : TaskActivity<int, int>
    {
        protected override int Execute(TaskContext context, int input) => input;
    }
}
