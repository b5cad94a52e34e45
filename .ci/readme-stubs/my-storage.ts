// A stand-in for a storage of the reader's own, for the conformance snippet.
import type { Storage } from '@risemaxi/bufio';

export declare const MyStorage: new <T>() => Storage<T>;
