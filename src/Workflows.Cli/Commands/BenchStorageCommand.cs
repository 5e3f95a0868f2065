using System.CommandLine;
using System.Globalization;
using Workflows.Artifacts.Azurite;
using Workflows.Artifacts.Benchmarks;
using Workflows.Artifacts.Store;

namespace Workflows.Cli.Commands;

public static class BenchStorageCommand
{
    public static Command Create(CliContext cli)
    {
        var size = new Option<int>("--size-mib") { Description = "Bytes to upload and download, in MiB.", DefaultValueFactory = _ => 256 };
        var command = new Command("storage", """
            Upload and download throughput of the artifact store (streaming, SHA-256 while streaming) against the
            configured storage: WF_STORAGE_CONNECTION_STRING, else a local Azurite (started for the run if none is up).

            Example:
              wf bench storage --size-mib 1024
            """)
        {
            size,
        };
        command.SetAction(async (parse, ct) =>
        {
            await using var session = await StorageSession.OpenAsync(new StorageSessionOptions { Log = cli.Err }, ct);
            var store = await BlobArtifactStore.OpenAsync(session.Connection, cancellationToken: ct);
            var bytes = (long)parse.GetValue(size) << 20;
            var r = await ArtifactThroughputBenchmark.RunAsync(store, bytes, ct);
            cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{bytes >> 20} MiB against {session.Connection.Description}: upload {r.UploadMBps:0} MB/s, download {r.DownloadMBps:0} MB/s, streaming read {r.StreamingReadMBps:0} MB/s ({Environment.ProcessorCount} cores)"));
            return ExitCodes.Ok;
        });
        return command;
    }
}
