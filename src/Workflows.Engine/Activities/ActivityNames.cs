namespace Workflows.Engine;

/// <summary>Names of the engine's own activities (step types add theirs).</summary>
public static class ActivityNames
{
    /// <summary>Every activity is registered and scheduled with this version; bump it when an activity's contract changes.</summary>
    public const string Version = "2"; // 2: replies are tagged (ActivityReply)

    public const string UpdateRun = "wf.run.update";
    public const string LookupCache = "wf.cache.lookup";
    public const string RunFinished = "wf.run.finished";
}
