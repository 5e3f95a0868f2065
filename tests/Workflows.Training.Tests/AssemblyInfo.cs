// Tests share torch's global generator (manual_seed before building a model) and the 2 cores torch already
// uses for its kernels, so test classes run one after another.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
