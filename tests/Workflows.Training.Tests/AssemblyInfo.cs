using System.Runtime.CompilerServices;

// Tests share torch's global generator (manual_seed before building a model), so test classes run one after
// another.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Workflows.Training.Tests;

static class TorchTestSetup
{
    // One intra-op thread: the tensors here are tiny, and on a 2-core machine shared with other builds torch's
    // spinning worker threads made the suite 4x slower (28 s vs 7 s for the learning test at load average ~10).
#pragma warning disable CA2255 // a module initializer is the one hook that runs before any test touches torch
    [ModuleInitializer]
    internal static void UseOneThread() => TorchSharp.torch.set_num_threads(1);
#pragma warning restore CA2255
}
