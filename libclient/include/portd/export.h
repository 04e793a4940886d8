// PORTD_API marks what libportd exports. The library is built with hidden
// visibility, so everything else (the transport, the codec, Cap'n Proto)
// stays private to it.
#pragma once

#define PORTD_API __attribute__((visibility("default")))
