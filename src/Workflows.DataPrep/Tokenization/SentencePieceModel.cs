using System.Buffers.Binary;
using System.Text;
using Workflows.Experiments.Paths;
using Workflows.Experiments.Validation;

namespace Workflows.DataPrep.Tokenization;

/// <summary>The kind of a vocabulary entry, as <c>ModelProto.SentencePiece.Type</c> numbers it.</summary>
public enum SentencePieceType
{
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

/// <summary>One vocabulary entry of a SentencePiece model; its id is its index in <see cref="SentencePieceModel.Pieces"/>.</summary>
public readonly record struct SentencePieceEntry(string Piece, float Score, SentencePieceType Type);

/// <summary>SentencePiece's <c>TrainerSpec.ModelType</c>.</summary>
public enum SentencePieceModelType
{
    Unigram = 1,
    Bpe = 2,
    Word = 3,
    Char = 4,
}

/// <summary>
/// The parts of a SentencePiece <c>ModelProto</c> (sentencepiece_model.proto) that encoding needs, read with a
/// small protobuf reader of our own so that no generated code or Google.Protobuf dependency is needed.
/// Defaults are proto2's defaults from sentencepiece_model.proto (e.g. remove_extra_whitespaces defaults to true).
/// </summary>
public sealed record SentencePieceModel(
    IReadOnlyList<SentencePieceEntry> Pieces,
    SentencePieceModelType ModelType,
    bool ByteFallback,
    bool TreatWhitespaceAsSuffix,
    string NormalizerName,
    int PrecompiledCharsMapLength,
    bool AddDummyPrefix,
    bool RemoveExtraWhitespaces,
    bool EscapeWhitespaces,
    int UnkId,
    int BosId,
    int EosId,
    string UnknownSurface)
{
    /// <summary>Reads a <c>tokenizer.model</c>; throws <see cref="InvalidDataException"/> naming the file and the fault.</summary>
    public static SentencePieceModel Load(string path)
    {
        byte[] bytes;
        try
        {
            bytes = PathPolicy.Current.ReadAllBytes(path, PathRules.MaxTokenizerBytes);
        }
        catch (UnsafePathException)
        {
            throw;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"Cannot read SentencePiece model {PathPolicy.Show(path)}: {e.Message}", e);
        }

        try
        {
            return Parse(bytes);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{PathPolicy.Show(path)} is not a SentencePiece model: {e.Message}", e);
        }
    }

    /// <summary>Parses ModelProto bytes; throws <see cref="InvalidDataException"/> describing what is wrong.</summary>
    public static SentencePieceModel Parse(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty)
        {
            throw new InvalidDataException("the file is empty");
        }

        var pieces = new List<SentencePieceEntry>();
        var modelType = SentencePieceModelType.Unigram;
        bool byteFallback = false, suffix = false;
        string normalizerName = "";
        int charsMapLength = 0;
        bool addDummyPrefix = true, removeExtra = true, escape = true;
        bool sawTrainer = false, sawNormalizer = false;
        int unkId = 0, bosId = 1, eosId = 2;
        string unknownSurface = " \u2047 ";

        var reader = new ProtoReader(bytes, "ModelProto");
        while (reader.Next(out var field, out var wire))
        {
            switch (field)
            {
                case 1 when wire == ProtoReader.LengthDelimited:
                    pieces.Add(ParsePiece(reader.ReadBytes(), pieces.Count));
                    break;
                case 2 when wire == ProtoReader.LengthDelimited:
                    sawTrainer = true;
                    var trainer = new ProtoReader(reader.ReadBytes(), "TrainerSpec");
                    while (trainer.Next(out var f, out var w))
                    {
                        switch (f)
                        {
                            case 3 when w == ProtoReader.Varint: modelType = (SentencePieceModelType)trainer.ReadVarint(); break;
                            case 24 when w == ProtoReader.Varint: suffix = trainer.ReadVarint() != 0; break;
                            case 35 when w == ProtoReader.Varint: byteFallback = trainer.ReadVarint() != 0; break;
                            case 40 when w == ProtoReader.Varint: unkId = (int)trainer.ReadVarint(); break;
                            case 41 when w == ProtoReader.Varint: bosId = (int)trainer.ReadVarint(); break;
                            case 42 when w == ProtoReader.Varint: eosId = (int)trainer.ReadVarint(); break;
                            case 44 when w == ProtoReader.LengthDelimited: unknownSurface = Utf8(trainer.ReadBytes(), "TrainerSpec.unk_surface"); break;
                            default: trainer.Skip(w); break;
                        }
                    }

                    break;
                case 3 when wire == ProtoReader.LengthDelimited:
                    sawNormalizer = true;
                    var normalizer = new ProtoReader(reader.ReadBytes(), "NormalizerSpec");
                    while (normalizer.Next(out var f, out var w))
                    {
                        switch (f)
                        {
                            case 1 when w == ProtoReader.LengthDelimited: normalizerName = Utf8(normalizer.ReadBytes(), "NormalizerSpec.name"); break;
                            case 2 when w == ProtoReader.LengthDelimited: charsMapLength = normalizer.ReadBytes().Length; break;
                            case 3 when w == ProtoReader.Varint: addDummyPrefix = normalizer.ReadVarint() != 0; break;
                            case 4 when w == ProtoReader.Varint: removeExtra = normalizer.ReadVarint() != 0; break;
                            case 5 when w == ProtoReader.Varint: escape = normalizer.ReadVarint() != 0; break;
                            default: normalizer.Skip(w); break;
                        }
                    }

                    break;
                default:
                    reader.Skip(wire);
                    break;
            }
        }

        if (pieces.Count == 0)
        {
            throw new InvalidDataException("it has no vocabulary pieces (ModelProto field 1)");
        }

        if (!sawTrainer || !sawNormalizer)
        {
            throw new InvalidDataException($"it lacks {(sawTrainer ? "" : "trainer_spec ")}{(sawNormalizer ? "" : "normalizer_spec")}".TrimEnd());
        }

        return new SentencePieceModel(
            pieces, modelType, byteFallback, suffix, normalizerName, charsMapLength, addDummyPrefix, removeExtra, escape,
            unkId, bosId, eosId, unknownSurface);
    }

    private static SentencePieceEntry ParsePiece(ReadOnlySpan<byte> bytes, int index)
    {
        string? piece = null;
        float score = 0;
        var type = SentencePieceType.Normal;
        var reader = new ProtoReader(bytes, $"SentencePiece #{index}");
        while (reader.Next(out var field, out var wire))
        {
            switch (field)
            {
                case 1 when wire == ProtoReader.LengthDelimited: piece = Utf8(reader.ReadBytes(), $"piece #{index}"); break;
                case 2 when wire == ProtoReader.Fixed32: score = reader.ReadFloat(); break;
                case 3 when wire == ProtoReader.Varint: type = (SentencePieceType)reader.ReadVarint(); break;
                default: reader.Skip(wire); break;
            }
        }

        if (string.IsNullOrEmpty(piece))
        {
            throw new InvalidDataException($"vocabulary entry #{index} has no piece text");
        }

        if (!Enum.IsDefined(type))
        {
            throw new InvalidDataException($"vocabulary entry #{index} ('{piece}') has unknown type {(int)type}");
        }

        return new SentencePieceEntry(piece, score, type);
    }

    private static string Utf8(ReadOnlySpan<byte> bytes, string what)
    {
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new InvalidDataException($"{what} is not valid UTF-8");
        }
    }

    /// <summary>A forward-only reader of protobuf wire format that reports malformed input as InvalidDataException.</summary>
    private ref struct ProtoReader(ReadOnlySpan<byte> data, string message)
    {
        public const int Varint = 0, Fixed64 = 1, LengthDelimited = 2, Fixed32 = 5;
        private readonly ReadOnlySpan<byte> _data = data;
        private readonly string _message = message;
        private int _pos;

        public bool Next(out int field, out int wire)
        {
            if (_pos >= _data.Length)
            {
                field = wire = 0;
                return false;
            }

            var key = ReadVarint();
            field = (int)(key >> 3);
            wire = (int)(key & 7);
            if (field == 0 || wire is not (Varint or Fixed64 or LengthDelimited or Fixed32))
            {
                throw new InvalidDataException($"malformed protobuf in {_message} at byte {_pos}: field {field}, wire type {wire}");
            }

            return true;
        }

        public ulong ReadVarint()
        {
            ulong result = 0;
            for (var shift = 0; shift < 64; shift += 7)
            {
                if (_pos >= _data.Length)
                {
                    throw new InvalidDataException($"truncated varint in {_message}");
                }

                var b = _data[_pos++];
                result |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80)
                {
                    return result;
                }
            }

            throw new InvalidDataException($"varint longer than 10 bytes in {_message}");
        }

        public ReadOnlySpan<byte> ReadBytes()
        {
            var length = ReadVarint();
            if (length > (ulong)(_data.Length - _pos))
            {
                throw new InvalidDataException($"length {length} runs past the end of {_message}");
            }

            var slice = _data.Slice(_pos, (int)length);
            _pos += (int)length;
            return slice;
        }

        public float ReadFloat()
        {
            if (_data.Length - _pos < 4)
            {
                throw new InvalidDataException($"truncated float in {_message}");
            }

            var value = BinaryPrimitives.ReadSingleLittleEndian(_data.Slice(_pos, 4));
            _pos += 4;
            return value;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case Varint: ReadVarint(); break;
                case LengthDelimited: ReadBytes(); break;
                case Fixed32 or Fixed64:
                    var size = wire == Fixed32 ? 4 : 8;
                    if (_data.Length - _pos < size)
                    {
                        throw new InvalidDataException($"truncated fixed field in {_message}");
                    }

                    _pos += size;
                    break;
            }
        }
    }
}
