// The library as a test page uses it: bundled for the browser by
// tests/browser/suite.ts (`deno bundle --platform=browser`) and put on
// `globalThis.sluice` for the tests' `page.evaluate` calls.

import { fetchEventStream } from "../../lib/http/fetch_event_stream.ts";
import { openDuplex } from "../../lib/http/open_duplex.ts";
import { resumableUpload } from "../../lib/http/resumable_upload.ts";
import { SseDecoderStream } from "../../lib/http/sse_decoder_stream.ts";
import { upload } from "../../lib/http/upload.ts";
import { websocketDuplex } from "../../lib/http/websocket_duplex.ts";

const sluice = {
  fetchEventStream,
  openDuplex,
  resumableUpload,
  SseDecoderStream,
  upload,
  websocketDuplex,
};

/** What the test pages find on `globalThis`. */
export type Sluice = typeof sluice;

(globalThis as { sluice?: Sluice }).sluice = sluice;
