package pyro

import "github.com/pyrovm/pyro/internal/errdefs"

// Stable error codes: ErrorCode(err) returns one of these (see
// internal/errdefs/codes.go for what each means). They never change.
const (
	CodeInvalidArgument         = errdefs.CodeInvalidArgument
	CodeEnvironmentMissing      = errdefs.CodeEnvironmentMissing
	CodeEnvironmentBuild        = errdefs.CodeEnvironmentBuild
	CodeHostToolMissing         = errdefs.CodeHostToolMissing
	CodeBootFailed              = errdefs.CodeBootFailed
	CodeTimeout                 = errdefs.CodeTimeout
	CodeAgentProtocol           = errdefs.CodeAgentProtocol
	CodeVMMFailed               = errdefs.CodeVMMFailed
	CodeVMMUnsupported          = errdefs.CodeVMMUnsupported
	CodeCanceled                = errdefs.CodeCanceled
	CodeInternal                = errdefs.CodeInternal
	CodeNoSpace                 = errdefs.CodeNoSpace
	CodeImageUnsafe             = errdefs.CodeImageUnsafe
	CodeImageCorrupt            = errdefs.CodeImageCorrupt
	CodeImageNoShell            = errdefs.CodeImageNoShell
	CodeImagePlatform           = errdefs.CodeImagePlatform
	CodeImagePull               = errdefs.CodeImagePull
	CodeRegistryAuth            = errdefs.CodeRegistryAuth
	CodePullNotAllowed          = errdefs.CodePullNotAllowed
	CodeImageTooLarge           = errdefs.CodeImageTooLarge
	CodeImagePush               = errdefs.CodeImagePush
	CodeArtifactMismatch        = errdefs.CodeArtifactMismatch
	CodeBuildStepFailed         = errdefs.CodeBuildStepFailed
	CodeNetworkDisabled         = errdefs.CodeNetworkDisabled
	CodeWorkspaceNotFound       = errdefs.CodeWorkspaceNotFound
	CodeWorkspaceStopped        = errdefs.CodeWorkspaceStopped
	CodeWorkspaceRunning        = errdefs.CodeWorkspaceRunning
	CodeWorkspaceNotPaused      = errdefs.CodeWorkspaceNotPaused
	CodeWorkspacePausing        = errdefs.CodeWorkspacePausing
	CodeSupervisorOutdated      = errdefs.CodeSupervisorOutdated
	CodeBackendMismatch         = errdefs.CodeBackendMismatch
	CodePauseFailed             = errdefs.CodePauseFailed
	CodeForkFailed              = errdefs.CodeForkFailed
	CodeNameTaken               = errdefs.CodeNameTaken
	CodeDiskMissing             = errdefs.CodeDiskMissing
	CodeDiskUnreadable          = errdefs.CodeDiskUnreadable
	CodeSnapshotExists          = errdefs.CodeSnapshotExists
	CodeSnapshotNotFound        = errdefs.CodeSnapshotNotFound
	CodeSupervisorUnavailable   = errdefs.CodeSupervisorUnavailable
	CodeSecretsInstallFailed    = errdefs.CodeSecretsInstallFailed
	CodeSecretNotFound          = errdefs.CodeSecretNotFound
	CodeSecretExists            = errdefs.CodeSecretExists
	CodePathOutsideWorkspace    = errdefs.CodePathOutsideWorkspace
	CodeNotFound                = errdefs.CodeNotFound
	CodeAlreadyExists           = errdefs.CodeAlreadyExists
	CodeConflict                = errdefs.CodeConflict
	CodeTooLarge                = errdefs.CodeTooLarge
	CodeBadArchive              = errdefs.CodeBadArchive
	CodePatchFailed             = errdefs.CodePatchFailed
	CodeNotADirectory           = errdefs.CodeNotADirectory
	CodeNotAFile                = errdefs.CodeNotAFile
	CodeIsSymlink               = errdefs.CodeIsSymlink
	CodeHostPathDenied          = errdefs.CodeHostPathDenied
	CodeExecFailed              = errdefs.CodeExecFailed
	CodeStdinFailed             = errdefs.CodeStdinFailed
	CodeAgentUnavailable        = errdefs.CodeAgentUnavailable
	CodeVMCrashed               = errdefs.CodeVMCrashed
	CodeCommandNotFound         = errdefs.CodeCommandNotFound
	CodeTooManyCommands         = errdefs.CodeTooManyCommands
	CodeInvalidCursor           = errdefs.CodeInvalidCursor
	CodeShellNotFound           = errdefs.CodeShellNotFound
	CodeShellClosed             = errdefs.CodeShellClosed
	CodeTooManyShells           = errdefs.CodeTooManyShells
	CodeServiceNotFound         = errdefs.CodeServiceNotFound
	CodeServiceExists           = errdefs.CodeServiceExists
	CodeServiceFailed           = errdefs.CodeServiceFailed
	CodePortInUse               = errdefs.CodePortInUse
	CodeListenFailed            = errdefs.CodeListenFailed
	CodeVMNotFound              = errdefs.CodeVMNotFound
	CodeVMStopped               = errdefs.CodeVMStopped
	CodeNetworkRulesNeedNetwork = errdefs.CodeNetworkRulesNeedNetwork
	CodeNoEgressRules           = errdefs.CodeNoEgressRules
	CodeBrokerNeedsNetwork      = errdefs.CodeBrokerNeedsNetwork
)
