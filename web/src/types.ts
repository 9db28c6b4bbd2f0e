export type Role = 'ADMIN' | 'CHANNEL_MANAGER' | 'USER';
export type ChannelType = 'PUBLIC' | 'PRIVATE';
export type UploadStatus = 'WAITING' | 'SUCCESS' | 'FAILED';
export type NotificationType = 'NEW_MESSAGE' | 'ROLE_CHANGED' | 'ASYNC_FAILED';

export interface BinaryContentDto {
  id: string;
  fileName: string;
  size: number;
  contentType: string;
  uploadStatus: UploadStatus;
}

export interface UserDto {
  id: string;
  username: string;
  email: string;
  profile: BinaryContentDto | null;
  online: boolean | null;
  role: Role;
}

export interface ChannelDto {
  id: string;
  type: ChannelType;
  name: string | null;
  description: string | null;
  participants: UserDto[];
  lastMessageAt: string;
}

export interface MessageDto {
  id: string;
  createdAt: string;
  updatedAt: string;
  content: string;
  channelId: string;
  author: UserDto | null;
  attachments: BinaryContentDto[];
}

export interface ReadStatusDto {
  id: string;
  userId: string;
  channelId: string;
  lastReadAt: string;
  notificationEnabled: boolean;
}

export interface NotificationDto {
  id: string;
  createdAt: string;
  receiverId: string;
  title: string;
  content: string;
  type: NotificationType;
  targetId: string | null;
}

export interface PageResponse<T> {
  content: T[];
  nextCursor: string | null;
  size: number;
  hasNext: boolean;
  totalElements: number | null;
}

export interface ErrorResponse {
  timestamp?: string;
  code?: string;
  message?: string;
  details?: Record<string, unknown>;
  exceptionType?: string;
  status?: number;
  error?: string;
  path?: string;
}

export type ConnState = 'idle' | 'connecting' | 'connected' | 'reconnecting';
