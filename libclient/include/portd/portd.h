// libportd: Mach-style ports for Linux, in user space. Include this for the
// whole C++ API.
#pragma once

#include "portd/memory.h"
#include "portd/message.h"
#include "portd/notification.h"
#include "portd/result.h"
#include "portd/rights.h"
#include "portd/status.h"
#include "portd/task.h"
#include "portd/types.h"
